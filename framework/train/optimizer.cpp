#include "framework/train/optimizer.h"

#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>


#include "framework/train/adamw.h"
#include "framework/train/grad_sync.h"
#include "framework/train/zero.h"

namespace attnlab {
namespace {

// Every rank holds the whole AdamW; with a communicator the gradients are averaged first.
class ReplicatedAdamW final : public Optimizer {
 public:
  ReplicatedAdamW(const NamedTensors& params, const OptimConfig& optim, const ParallelConfig& parallel,
                  Communicator* comm)
      : adamw_(params, optim) {
    for (const auto& [name, p] : params) params_.push_back(p);
    if (comm)
      sync_ = std::make_unique<GradientSync>(*comm, params_, bucket_bytes(parallel),
                                             GradientSync::Reduce::all_reduce);
  }
  void before_backward(bool last) override {
    if (sync_) sync_->arm(last);
  }
  void after_backward() override {
    if (sync_) timed([&] { sync_->finish(); });
  }
  at::Tensor grad_norm() override {
    std::vector<at::Tensor> g = grads();
    if (g.empty()) return at::zeros({1}, params_.at(0).options().dtype(at::kFloat));
    return at::linalg_vector_norm(at::stack(at::_foreach_norm(g)).to(grad_norm_dtype(g[0]))).reshape({1});
  }
  void scale_grads(double factor) override {
    std::vector<at::Tensor> g = grads();
    if (!g.empty()) at::_foreach_mul_(g, factor);
  }
  void step(double lr) override { adamw_.step(lr); }
  void zero_grad() override {
    for (auto& p : params_) p.mutable_grad() = at::Tensor();
  }
  NamedTensors state(bool) override { return adamw_.state(); }
  size_t buckets() const override { return sync_ ? sync_->buckets().size() : 0; }
  void load_state(const std::map<std::string, at::Tensor>& t, int64_t steps, const std::string& origin) override {
    adamw_.load_state(t, steps, origin);
  }
  int64_t steps() const override { return adamw_.steps(); }
  int64_t state_bytes() const override { return adamw_.state_bytes(); }

 private:
  std::vector<at::Tensor> grads() const {
    std::vector<at::Tensor> g;
    for (const auto& p : params_)
      if (p.grad().defined()) g.push_back(p.grad());
    return g;
  }
  AdamW adamw_;
  std::vector<at::Tensor> params_;
  std::unique_ptr<GradientSync> sync_;
};

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const NamedTensors& params, const OptimConfig& optim,
                                          const ParallelConfig& parallel, Communicator* comm) {
  if (comm && comm->size() == 1) comm = nullptr;
  if (comm && parallel.zero == 1) return make_zero1_adamw(params, optim, parallel, *comm);
  return std::make_unique<ReplicatedAdamW>(params, optim, parallel, comm);
}

}  // namespace attnlab
