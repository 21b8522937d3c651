#include "framework/dist/sequence_collectives.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

namespace attnlab {
namespace {

// `dim` moved to the front, so that every rank's slice is one contiguous block.
at::Tensor front(const at::Tensor& x, int64_t dim) { return x.movedim(dim, 0).contiguous(); }

at::Tensor gather_front(const at::Tensor& x, Communicator& g, int64_t dim) {
  at::Tensor in = front(x, dim);
  std::vector<int64_t> shape = in.sizes().vec();
  shape[0] *= g.size();
  at::Tensor out = at::empty(shape, in.options());
  g.all_gather_into(in, out);
  return out.movedim(0, dim);
}

struct GatherSequence : torch::autograd::Function<GatherSequence> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, Communicator* g,
                            int64_t dim) {
    ctx->saved_data["group"] = reinterpret_cast<int64_t>(g);
    ctx->saved_data["dim"] = dim;
    return gather_front(x, *g, dim);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* g = reinterpret_cast<Communicator*>(ctx->saved_data["group"].toInt());
    const int64_t dim = ctx->saved_data["dim"].toInt();
    at::Tensor full = front(grads[0], dim);
    std::vector<int64_t> shape = full.sizes().vec();
    shape[0] /= g->size();
    at::Tensor flat = full.view({-1});
    at::Tensor mine = at::empty({flat.numel() / g->size()}, flat.options());
    g->reduce_scatter_async(flat, mine).wait();
    return {mine.view(shape).movedim(0, dim), at::Tensor(), at::Tensor()};
  }
};

// Moves `x` `distance` ranks up the chain (negative: down); the lowest ranks receive zeros.
at::Tensor shift(const at::Tensor& x, Communicator& g, int64_t distance) {
  at::Tensor out = x.contiguous(), in = at::zeros_like(out);
  const int64_t dst = g.rank() + distance, src = g.rank() - distance;
  const bool send = dst >= 0 && dst < g.size(), receive = src >= 0 && src < g.size();
  g.exchange(out, send ? dst : -1, in, receive ? src : -1);
  return in;
}

struct ShiftRanks : torch::autograd::Function<ShiftRanks> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, Communicator* g,
                            int64_t distance) {
    ctx->saved_data["group"] = reinterpret_cast<int64_t>(g);
    ctx->saved_data["distance"] = distance;
    return shift(x, *g, distance);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* g = reinterpret_cast<Communicator*>(ctx->saved_data["group"].toInt());
    return {shift(grads[0], *g, -ctx->saved_data["distance"].toInt()), at::Tensor(), at::Tensor()};
  }
};

// The all-to-all of Ulysses, both directions (each is the other's backward).
at::Tensor to_heads(const at::Tensor& x, Communicator& g) {
  const int64_t P = g.size(), B = x.size(0), S = x.size(1), H = x.size(2), d = x.size(3);
  at::Tensor in = x.reshape({B, S, P, H / P, d}).permute({2, 0, 1, 3, 4}).contiguous();  // block j: heads of rank j
  at::Tensor out = at::empty_like(in);
  g.all_to_all(in, out);  // block j: shard j of my heads
  return out.permute({1, 0, 2, 3, 4}).reshape({B, P * S, H / P, d});
}
at::Tensor to_sequence(const at::Tensor& y, Communicator& g) {
  const int64_t P = g.size(), B = y.size(0), S = y.size(1) / P, h = y.size(2), d = y.size(3);
  at::Tensor in = y.reshape({B, P, S, h, d}).permute({1, 0, 2, 3, 4}).contiguous();  // block j: shard j
  at::Tensor out = at::empty_like(in);
  g.all_to_all(in, out);  // block j: my shard of head group j
  return out.permute({1, 2, 0, 3, 4}).reshape({B, S, P * h, d});
}

// One autograd function for both directions: the backward of each is the other.
struct Ulysses : torch::autograd::Function<Ulysses> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, Communicator* g,
                            bool heads) {
    ctx->saved_data["group"] = reinterpret_cast<int64_t>(g);
    ctx->saved_data["heads"] = heads;
    return heads ? to_heads(x, *g) : to_sequence(x, *g);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* g = reinterpret_cast<Communicator*>(ctx->saved_data["group"].toInt());
    const bool heads = ctx->saved_data["heads"].toBool();
    return {heads ? to_sequence(grads[0], *g) : to_heads(grads[0], *g), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor sequence_to_heads(const at::Tensor& x, Communicator& group) {
  TORCH_CHECK(x.dim() == 4 && x.size(2) % group.size() == 0, "ulysses: ", group.size(),
              " context-parallel ranks must divide the heads of ", x.sizes());
  if (group.size() == 1) return x;
  return Ulysses::apply(x, &group, true);
}

at::Tensor heads_to_sequence(const at::Tensor& y, Communicator& group) {
  TORCH_CHECK(y.dim() == 4 && y.size(1) % group.size() == 0, "ulysses: sequence of ", y.sizes(),
              " does not split over ", group.size(), " ranks");
  if (group.size() == 1) return y;
  return Ulysses::apply(y, &group, false);
}

at::Tensor shift_ranks(const at::Tensor& x, Communicator& group, int64_t distance) {
  if (group.size() == 1 || distance == 0) return distance == 0 ? x : at::zeros_like(x);
  return ShiftRanks::apply(x, &group, distance);
}

ShardHalo tokens_before_shard(const at::Tensor& x, Communicator& group, int64_t n, int64_t dim) {
  const int64_t S = x.size(dim), r = group.rank(), tail = std::min(n, S);
  const at::Tensor last = x.narrow(dim, S - tail, tail).contiguous();
  if (n <= S) {  // the previous rank's last n entries
    const at::Tensor moved = shift_ranks(last, group, 1);
    return {r > 0 ? moved : at::Tensor(), moved};
  }
  const at::Tensor moved = gather_sequence(last, group, dim);  // longer than a shard: every shard's
  const int64_t have = std::min(n, r * S);
  return {have > 0 ? moved.narrow(dim, r * S - have, have) : at::Tensor(), moved};
}

at::Tensor tie_to_graph(const at::Tensor& x, const at::Tensor& unused) {
  if (!unused.defined() || !unused.requires_grad() || unused.numel() == 0) return x;
  return x + unused.reshape({-1}).narrow(0, 0, 1).sum().to(x.scalar_type()) * 0.0;
}

at::Tensor gather_sequence(const at::Tensor& x, Communicator& group, int64_t dim) {
  if (dim < 0) dim += x.dim();
  if (group.size() == 1) return x;
  return GatherSequence::apply(x, &group, dim);
}

}  // namespace attnlab
