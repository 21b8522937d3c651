// Context parallelism for the Titans memory (docs/parallelism.md, "serial_state"): the memory's
// state (anchor, weights, momentum) is passed from rank to rank, LASP-1 style (the short convs'
// κ − 1 rows before the shard come from tokens_before_shard). The forward is
// serial over ranks (rank r starts when rank r − 1 has finished its shard); the backward runs
// the chain in reverse. Every hop's message depends on the previous hop's, so all ranks run the
// backward of the exchanges in the same order.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <utility>

#include "framework/dist/communicator.h"
#include "kernels/titans/spec.h"

namespace attnlab::layers {

/// Runs `shard` once on this rank, from `start` on rank 0 and from the state the previous rank
/// ends with elsewhere (at position (rank · S) mod chunk of a chunk). Returns the shard's output,
/// tied to every exchange; `after` is folded into the first message so the chain follows it.
using MemoryShard = std::function<std::pair<at::Tensor, kernels::MemoryState>(const kernels::MemoryState&)>;
at::Tensor serial_memory(const MemoryShard& shard, const kernels::MemoryState& start, int64_t chunk, int64_t S,
                         Communicator& cp, const at::Tensor& after);

}  // namespace attnlab::layers
