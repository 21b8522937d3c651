#include "layers/titans/memory_cp.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/zeros.h>

#include "framework/dist/sequence_collectives.h"

namespace attnlab::layers {
namespace {

/// [B, Σ]: every carry tensor flattened after the batch dim.
at::Tensor pack(const std::vector<at::Tensor>& carry) {
  std::vector<at::Tensor> flat;
  for (const at::Tensor& t : carry) flat.push_back(t.flatten(1));
  return at::cat(flat, -1);
}

int64_t packed_width(const std::vector<at::Tensor>& shapes) {
  int64_t n = 0;
  for (const at::Tensor& t : shapes) n += t.numel() / t.size(0);
  return n;
}

std::vector<at::Tensor> unpack(const at::Tensor& packed, const std::vector<at::Tensor>& shapes) {
  std::vector<at::Tensor> out;
  int64_t at = 0;
  for (const at::Tensor& t : shapes) {
    const int64_t n = t.numel() / t.size(0);
    out.push_back(packed.narrow(-1, at, n).reshape(t.sizes()));
    at += n;
  }
  return out;
}

}  // namespace

at::Tensor serial_chain(const ChainShard& shard, const std::vector<at::Tensor>& start, const CarryShapes& shapes,
                        Communicator& cp, const at::Tensor& after) {
  const int64_t P = cp.size(), r = cp.rank(), B = start.at(0).size(0);
  std::vector<at::Tensor> in = start;
  at::Tensor y, previous;  // previous: the last hop's message, which the next one depends on
  // A rank that does not own a hop sends zeros tied to what it holds (derived from `start`, which
  // carries learned weights), so every rank's message of every hop is in the graph when training:
  // each rank then runs the backward of every exchange, in the same order.
  const at::Tensor seed = pack(start).sum() * 0;
  for (int64_t hop = 0; hop < P; ++hop) {
    at::Tensor send;
    if (r == hop) {
      auto [out, carry] = shard(in);
      y = out;
      send = pack(carry);
    } else {
      const std::vector<at::Tensor> next = hop + 1 < P ? shapes(hop + 1) : start;
      send = at::zeros({B, packed_width(next)}, pack(start).options()) + (previous.defined() ? previous.sum() * 0 : seed);
    }
    if (hop == 0 && after.defined()) send = send + 0 * after.sum();
    if (hop + 1 == P) break;
    previous = shift_ranks(send.contiguous(), cp, 1);
    if (r == hop + 1) in = unpack(previous, shapes(hop + 1));
  }
  return previous.defined() ? tie_to_graph(y, previous) : y;
}

std::vector<at::Tensor> memory_carry(const kernels::MemoryState& s) {
  std::vector<at::Tensor> all = s.anchor;
  all.insert(all.end(), s.weights.begin(), s.weights.end());
  all.insert(all.end(), s.momentum.begin(), s.momentum.end());
  return all;
}

kernels::MemoryState memory_from_carry(const std::vector<at::Tensor>& carry, size_t layers, int64_t tau) {
  kernels::MemoryState out;
  out.anchor.assign(carry.begin(), carry.begin() + layers);
  out.weights.assign(carry.begin() + layers, carry.begin() + 2 * layers);
  out.momentum.assign(carry.begin() + 2 * layers, carry.begin() + 3 * layers);
  out.tau = tau;
  if (tau == 0) out.anchor = out.weights;
  return out;
}

at::Tensor serial_memory(const MemoryShard& shard, const kernels::MemoryState& start, int64_t chunk, int64_t S,
                         Communicator& cp, const at::Tensor& after) {
  const size_t L = start.weights.size();
  const std::vector<at::Tensor> first = memory_carry(start);
  auto run = [&](const std::vector<at::Tensor>& carry) {
    const kernels::MemoryState in = cp.rank() == 0 ? start : memory_from_carry(carry, L, (cp.rank() * S) % chunk);
    auto [y, end] = shard(in);
    return std::pair{y, memory_carry(end)};
  };
  return serial_chain(run, first, [&](int64_t) { return first; }, cp, after);
}

}  // namespace attnlab::layers
