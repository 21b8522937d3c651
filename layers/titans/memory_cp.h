// Context parallelism for the Titans layers (docs/parallelism.md, "serial_state"): a carry (the
// memory's state, for mac also the segment's context) is passed from rank to rank, LASP-1
// style (the short convs' κ − 1 rows before the shard come from tokens_before_shard). The
// forward is serial over ranks (rank r starts when rank r − 1 has finished its shard); the
// backward runs the chain in reverse. Every hop's message depends on the previous hop's, so all
// ranks run the backward of the exchanges in the same order.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <utility>
#include <vector>

#include "framework/dist/communicator.h"
#include "kernels/titans/spec.h"

namespace attnlab::layers {

/// Runs on this rank once, from the carry it receives (`start` on rank 0); returns its output
/// and the carry for the next rank.
using ChainShard = std::function<std::pair<at::Tensor, std::vector<at::Tensor>>(const std::vector<at::Tensor>&)>;
/// The carry's tensors as rank r receives them (shapes and dtypes; the values are not read).
/// Every carry tensor leads with the batch dim.
using CarryShapes = std::function<std::vector<at::Tensor>(int64_t rank)>;

/// The chain: returns this rank's output, tied to every exchange; `after` is folded into the
/// first message so the chain follows it.
at::Tensor serial_chain(const ChainShard& shard, const std::vector<at::Tensor>& start, const CarryShapes& shapes,
                        Communicator& cp, const at::Tensor& after);

/// Runs `shard` once on this rank, from `start` on rank 0 and from the state the previous rank
/// ends with elsewhere (at position (rank · S) mod chunk of a chunk). Returns the shard's output,
/// tied to every exchange; `after` is folded into the first message so the chain follows it.
using MemoryShard = std::function<std::pair<at::Tensor, kernels::MemoryState>(const kernels::MemoryState&)>;
at::Tensor serial_memory(const MemoryShard& shard, const kernels::MemoryState& start, int64_t chunk, int64_t S,
                         Communicator& cp, const at::Tensor& after);

/// The memory state as carry tensors (anchor, weights, momentum) and back; `tau` is the
/// position in its chunk, which the receiver knows from its rank.
std::vector<at::Tensor> memory_carry(const kernels::MemoryState& s);
kernels::MemoryState memory_from_carry(const std::vector<at::Tensor>& carry, size_t layers, int64_t tau);

}  // namespace attnlab::layers
