#include "layers/titans/memory_cp.h"

#include <ATen/ops/cat.h>

#include "framework/dist/sequence_collectives.h"

namespace attnlab::layers {
namespace {

std::vector<at::Tensor> tensors_of(const kernels::MemoryState& s) {
  std::vector<at::Tensor> all = s.anchor;
  all.insert(all.end(), s.weights.begin(), s.weights.end());
  all.insert(all.end(), s.momentum.begin(), s.momentum.end());
  return all;
}

/// [B, H, Σ a·b]: every state tensor flattened after the (batch, head) dims.
at::Tensor pack(const kernels::MemoryState& s) {
  std::vector<at::Tensor> flat;
  for (const at::Tensor& t : tensors_of(s)) flat.push_back(t.flatten(2));
  return at::cat(flat, -1);
}

kernels::MemoryState unpack(const at::Tensor& packed, const kernels::MemoryState& like) {
  kernels::MemoryState out;
  const size_t L = like.weights.size();
  int64_t at = 0;
  std::vector<at::Tensor> parts;
  for (const at::Tensor& t : tensors_of(like)) {
    const int64_t n = t.size(2) * t.size(3);
    parts.push_back(packed.narrow(-1, at, n).reshape(t.sizes()));
    at += n;
  }
  out.anchor.assign(parts.begin(), parts.begin() + L);
  out.weights.assign(parts.begin() + L, parts.begin() + 2 * L);
  out.momentum.assign(parts.begin() + 2 * L, parts.end());
  return out;
}

}  // namespace

at::Tensor serial_memory(const MemoryShard& shard, const kernels::MemoryState& start, int64_t chunk, int64_t S,
                         Communicator& cp, const at::Tensor& after) {
  const int64_t P = cp.size(), r = cp.rank();
  kernels::MemoryState in = start;
  at::Tensor y, previous;  // previous: the last hop's message, which the next one depends on
  // Derived from `start` (the learned W_0), so every rank's message of every hop is in the
  // graph when training: each rank then runs the backward of every exchange, in the same order.
  const at::Tensor blank = pack(start) * 0;
  for (int64_t hop = 0; hop < P; ++hop) {
    at::Tensor send;
    if (r == hop) {
      auto [out, state] = shard(in);
      y = out;
      send = pack(state);
    } else {
      send = previous.defined() ? previous * 0 : blank;
    }
    if (hop == 0 && after.defined()) send = send + 0 * after.sum();
    if (hop + 1 == P) break;
    previous = shift_ranks(send.contiguous(), cp, 1);
    if (r == hop + 1) {
      in = unpack(previous, start);
      in.tau = ((hop + 1) * S) % chunk;
      if (in.tau == 0) in.anchor = in.weights;
    }
  }
  return previous.defined() ? tie_to_graph(y, previous) : y;
}

}  // namespace attnlab::layers
