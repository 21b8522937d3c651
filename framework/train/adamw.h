// AdamW with decoupled weight decay (Loshchilov & Hutter), written here rather than taken from
// torch::optim so that its whole state is a flat list of named tensors we save in safetensors
// and restore bit-exactly. Parameters of dim < 2 and embeddings get no decay unless
// optim.decay_norms_and_embeddings is set. A slot updates a whole parameter or, under ZeRO-1
// (framework/train/zero.h), a flat slice of one: the update is elementwise, so a slice gets
// exactly the numbers the whole parameter would.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "framework/checkpoint/safetensors.h"
#include "framework/config/run_config.h"

namespace attnlab {

/// Whether the parameter `name` (shaped like `param`) gets weight decay under `cfg`.
bool decays_by_default(const std::string& name, const at::Tensor& param, const OptimConfig& cfg);

/// What one AdamW slot updates in place: a parameter, or a view of part of one.
struct AdamWTarget {
  std::string name;
  at::Tensor param;
  bool decay = true;
};

class AdamW {
 public:
  /// One slot per whole parameter, decay by decays_by_default.
  AdamW(const NamedTensors& params, const OptimConfig& cfg);
  AdamW(std::vector<AdamWTarget> targets, const OptimConfig& cfg);
  /// One update with learning rate `lr`; grads[i] is slot i's gradient (undefined: skipped).
  void step(double lr, const std::vector<at::Tensor>& grads);
  /// The same with each slot's param.grad() (whole-parameter slots).
  void step(double lr);
  /// exp_avg.<name> and exp_avg_sq.<name> for every slot.
  NamedTensors state() const;
  /// Restores the moments from `tensors` (exactly the names, shapes and dtypes of state();
  /// `origin` names the file in errors) and the applied-step count.
  void load_state(const std::map<std::string, at::Tensor>& tensors, int64_t steps,
                  const std::string& origin);
  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }
  bool decays(const std::string& name) const;
  /// Bytes of moment tensors this optimizer holds (the per-rank figure ZeRO-1 divides).
  int64_t state_bytes() const;
  size_t slots() const { return slots_.size(); }

 private:
  struct Slot {
    std::string name;
    at::Tensor param, exp_avg, exp_avg_sq;
    bool decay;
  };
  std::vector<Slot> slots_;
  OptimConfig cfg_;
  int64_t steps_ = 0;
};

/// Learning rate for optimizer step `step` (0-based): linear warmup, then cosine | wsd | constant.
double learning_rate(const OptimConfig& cfg, int64_t step, int64_t total_steps);

}  // namespace attnlab
