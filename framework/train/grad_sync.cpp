#include "framework/train/grad_sync.h"

#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <stdexcept>

namespace attnlab {
namespace {

struct ReadyHook : torch::autograd::PostAccumulateGradHook {
  ReadyHook(GradientSync& s, size_t i) : sync(s), index(i) {}
  void operator()(const torch::autograd::Variable&) override { sync.on_gradient(index); }
  GradientSync& sync;
  size_t index;
};

}  // namespace

GradientSync::GradientSync(Communicator& comm, std::vector<at::Tensor> params, int64_t bucket_bytes,
                           Reduce how)
    : comm_(comm), params_(std::move(params)), how_(how), bucket_of_(params_.size()), slot_of_(params_.size()),
      copied_(params_.size(), false) {
  const int64_t world = comm_.size();
  auto close = [&](GradBucket& b, const at::Tensor& like) {
    const int64_t padded = (b.numel + world - 1) / world * world;
    b.flat = at::zeros({padded}, like.options());
    if (how_ == Reduce::reduce_scatter) b.shard = at::zeros({padded / world}, like.options());
  };
  int64_t bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const at::Tensor& p = params_[k];
    if (!p.is_leaf() || !p.requires_grad())
      throw std::invalid_argument("GradientSync: every parameter must be a leaf that requires grad");
    const bool new_bucket = buckets_.empty() || bytes >= bucket_bytes ||
                            params_[buckets_.back().params.back()].scalar_type() != p.scalar_type();
    if (new_bucket) {
      if (!buckets_.empty()) close(buckets_.back(), params_[buckets_.back().params.back()]);
      buckets_.emplace_back();
      bytes = 0;
    }
    GradBucket& b = buckets_.back();
    b.params.push_back(k);
    b.offsets.push_back(b.numel);
    b.numel += p.numel();
    bytes += p.numel() * static_cast<int64_t>(p.element_size());
    bucket_of_[k] = buckets_.size() - 1;
    slot_of_[k] = b.params.size() - 1;
  }
  if (!buckets_.empty()) close(buckets_.back(), params_[buckets_.back().params.back()]);
  for (size_t k = 0; k < params_.size(); ++k)
    torch::autograd::impl::set_post_acc_grad_hooks(params_[k], std::make_unique<ReadyHook>(*this, k));
}

GradientSync::~GradientSync() {
  for (const auto& p : params_) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
}

void GradientSync::arm(bool last_micro_batch) { armed_ = last_micro_batch; }

void GradientSync::on_gradient(size_t k) {
  if (!armed_) return;
  // A second accumulation into the same parameter in one backward (re-entrant recompute, two
  // backward calls per micro-batch) would arrive after its bucket left.
  if (copied_[k])
    throw std::logic_error("data parallel: a parameter's gradient was accumulated twice in the last "
                           "micro-batch; call backward once per micro-batch");
  GradBucket& b = buckets_[bucket_of_[k]];
  const size_t slot = slot_of_[k];
  at::NoGradGuard no_grad;
  const at::Tensor& g = params_[k].grad();
  b.flat.narrow(0, b.offsets[slot], g.numel()).view(g.sizes()).copy_(g);
  copied_[k] = true;
  ++b.ready;
  launch_ready();
}

void GradientSync::launch_ready() {
  while (next_ < buckets_.size() && buckets_[next_].ready == buckets_[next_].params.size())
    launch(buckets_[next_++]);
}

void GradientSync::launch(GradBucket& b) {
  if (how_ == Reduce::all_reduce) b.work = comm_.all_reduce_async(b.flat);
  else b.work = comm_.reduce_scatter_async(b.flat, b.shard);
}

void GradientSync::finish() {
  at::NoGradGuard no_grad;
  // Parameters whose hook did not fire in the last micro-batch contribute what they hold (the
  // earlier micro-batches' sum), or zeros when they got no gradient at all this step.
  for (size_t k = 0; k < params_.size(); ++k) {
    if (copied_[k]) continue;
    GradBucket& b = buckets_[bucket_of_[k]];
    at::Tensor slot = b.flat.narrow(0, b.offsets[slot_of_[k]], params_[k].numel());
    const at::Tensor& g = params_[k].grad();
    if (g.defined()) slot.view(g.sizes()).copy_(g);
    else slot.zero_();
    copied_[k] = true;
    ++b.ready;
  }
  launch_ready();
  const double inv = 1.0 / static_cast<double>(comm_.size());
  for (GradBucket& b : buckets_) {
    b.work.wait();
    if (how_ == Reduce::reduce_scatter) {
      b.shard.mul_(inv);
    } else {
      b.flat.mul_(inv);
      for (size_t slot = 0; slot < b.params.size(); ++slot) {
        at::Tensor& p = params_[b.params[slot]];
        at::Tensor mean = b.flat.narrow(0, b.offsets[slot], p.numel()).view(p.sizes());
        if (p.grad().defined()) p.mutable_grad().copy_(mean);
        else p.mutable_grad() = mean.clone();
      }
    }
    b.ready = 0;
  }
  std::fill(copied_.begin(), copied_.end(), false);
  next_ = 0;
  armed_ = false;
}

}  // namespace attnlab
