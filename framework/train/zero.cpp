#include "framework/train/zero.h"

#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <stdexcept>

#include "framework/checkpoint/tensor_copy.h"
#include "framework/train/adamw.h"
#include "framework/train/grad_sync.h"

namespace attnlab {
namespace {

class ShardedAdamW final : public Optimizer {
 public:
  ShardedAdamW(const NamedTensors& params, const OptimConfig& optim, const ParallelConfig& parallel,
               Communicator& comm)
      : named_(params),
        sync_(comm, plain(params), bucket_bytes(parallel), GradientSync::Reduce::reduce_scatter),
        adamw_(targets(optim), optim) {}

  void before_backward(bool last) override { sync_.arm(last); }
  void after_backward() override { timed([&] { sync_.finish(); }); }

  at::Tensor grad_norm() override {
    // Per piece, as DDP takes it per parameter: one fp32 norm over a whole multi-megabyte bucket
    // loses digits (7e-5 relative on the default recipe), a norm of per-piece norms does not.
    at::Tensor sq = at::zeros({1}, sync_.buckets().at(0).shard.options().dtype(grad_norm_dtype(sync_.buckets()[0].shard)));
    if (!pieces_.empty()) {
      const std::vector<at::Tensor> norms = at::_foreach_norm(piece_grads());
      sq = at::stack(norms).to(sq.scalar_type()).pow(2).sum().reshape({1});
    }
    timed([&] { sync_.comm().all_reduce(sq); });
    return sq.sqrt();
  }
  void scale_grads(double factor) override {
    for (auto& b : sync_.buckets()) b.shard.mul_(factor);
  }
  void step(double lr) override {
    adamw_.step(lr, piece_grads());
    // Each bucket's updated slices go to every rank (the shards' gradients are spent).
    at::NoGradGuard no_grad;
    timed([&] { all_gather_pieces([&](size_t i) { return piece_param(i); }); });
    for_each_gathered([&](size_t k, const at::Tensor& whole) { sync_.params()[k].detach().copy_(whole); });
  }
  void zero_grad() override {
    for (const auto& [name, p] : named_) p.mutable_grad() = at::Tensor();
  }

  // Both moments of every parameter, gathered slice by slice through the bucket buffers.
  NamedTensors state(bool writer) override {
    const NamedTensors local = adamw_.state();  // exp_avg.<n>, exp_avg_sq.<n> per piece, in order
    std::vector<at::Tensor> full[2];
    for (int which = 0; which < 2; ++which) {
      full[which].resize(named_.size());
      all_gather_pieces([&](size_t i) { return local[2 * i + which].second; });
      if (writer) for_each_gathered([&](size_t k, const at::Tensor& whole) { full[which][k] = whole.clone(); });
    }
    NamedTensors out;
    if (!writer) return out;
    for (size_t k = 0; k < named_.size(); ++k) {
      out.emplace_back("exp_avg." + named_[k].first, full[0][k]);
      out.emplace_back("exp_avg_sq." + named_[k].first, full[1][k]);
    }
    return out;
  }

  void load_state(const std::map<std::string, at::Tensor>& tensors, int64_t steps,
                  const std::string& origin) override {
    NamedTensors whole;  // the full moments, checked name by name, shape by shape
    for (const auto& [name, p] : named_) {
      whole.emplace_back("exp_avg." + name, at::zeros_like(p));
      whole.emplace_back("exp_avg_sq." + name, at::zeros_like(p));
    }
    copy_tensors_exact(whole, tensors, origin);
    std::map<std::string, at::Tensor> mine;
    for (const Piece& p : pieces_) {
      const std::string& name = named_[p.param].first;
      mine["exp_avg." + name] = whole[2 * p.param].second.view({-1}).narrow(0, p.param_offset, p.numel);
      mine["exp_avg_sq." + name] = whole[2 * p.param + 1].second.view({-1}).narrow(0, p.param_offset, p.numel);
    }
    adamw_.load_state(mine, steps, origin);
  }
  int64_t steps() const override { return adamw_.steps(); }
  int64_t state_bytes() const override { return adamw_.state_bytes(); }
  size_t buckets() const override { return sync_.buckets().size(); }

 private:
  /// The part of one parameter this rank owns: elements [param_offset, +numel) of the flattened
  /// parameter, which sit at shard_offset in its bucket's shard.
  struct Piece {
    size_t param, bucket;
    int64_t param_offset, shard_offset, numel;
  };

  static std::vector<at::Tensor> plain(const NamedTensors& params) {
    std::vector<at::Tensor> out;
    for (const auto& [name, p] : params) {
      if (!p.is_contiguous()) throw std::invalid_argument("ZeRO-1: parameter " + name + " is not contiguous");
      out.push_back(p);
    }
    return out;
  }

  // This rank's pieces, bucket by bucket, and the AdamW slots over them.
  std::vector<AdamWTarget> targets(const OptimConfig& optim) {
    const int64_t rank = sync_.comm().rank();
    std::vector<AdamWTarget> out;
    for (size_t bi = 0; bi < sync_.buckets().size(); ++bi) {
      const GradBucket& b = sync_.buckets()[bi];
      const int64_t lo = rank * b.shard_size(), hi = lo + b.shard_size();
      for (size_t slot = 0; slot < b.params.size(); ++slot) {
        const size_t k = b.params[slot];
        const int64_t begin = std::max(lo, b.offsets[slot]);
        const int64_t end = std::min(hi, b.offsets[slot] + named_[k].second.numel());
        if (begin >= end) continue;
        pieces_.push_back({k, bi, begin - b.offsets[slot], begin - lo, end - begin});
        out.push_back({named_[k].first, piece_param(pieces_.size() - 1),
                       decays_by_default(named_[k].first, named_[k].second, optim)});
      }
    }
    return out;
  }

  // Packs value_of(i) of every piece into its bucket's shard and all-gathers the shards: each
  // bucket's flat buffer then holds every rank's values (the shards' contents are spent).
  template <class F> void all_gather_pieces(F&& value_of) {
    for (auto& b : sync_.buckets()) b.shard.zero_();
    for (size_t i = 0; i < pieces_.size(); ++i)
      sync_.buckets()[pieces_[i].bucket].shard.narrow(0, pieces_[i].shard_offset, pieces_[i].numel).copy_(value_of(i));
    for (auto& b : sync_.buckets()) sync_.comm().all_gather_into(b.shard, b.flat);
  }

  // f(k, parameter k's part of its bucket's flat buffer, shaped like the parameter).
  template <class F> void for_each_gathered(F&& f) {
    for (const auto& b : sync_.buckets())
      for (size_t slot = 0; slot < b.params.size(); ++slot) {
        const at::Tensor& p = sync_.params()[b.params[slot]];
        f(b.params[slot], b.flat.narrow(0, b.offsets[slot], p.numel()).view(p.sizes()));
      }
  }

  // This rank's averaged gradient of each piece: views into the bucket shards.
  std::vector<at::Tensor> piece_grads() {
    std::vector<at::Tensor> grads;
    for (const Piece& p : pieces_) grads.push_back(sync_.buckets()[p.bucket].shard.narrow(0, p.shard_offset, p.numel));
    return grads;
  }

  at::Tensor piece_param(size_t i) const {
    const Piece& p = pieces_[i];
    return named_[p.param].second.detach().view({-1}).narrow(0, p.param_offset, p.numel);
  }

  NamedTensors named_;
  std::vector<Piece> pieces_;
  GradientSync sync_;
  AdamW adamw_;
};

}  // namespace

std::unique_ptr<Optimizer> make_zero1_adamw(const NamedTensors& params, const OptimConfig& optim,
                                            const ParallelConfig& parallel, Communicator& comm) {
  return std::make_unique<ShardedAdamW>(params, optim, parallel, comm);
}

}  // namespace attnlab
