// AdamW with decoupled weight decay (Loshchilov & Hutter), written here rather than taken from
// torch::optim so that its whole state is a flat list of named tensors we save in safetensors
// and restore bit-exactly. Parameters of dim < 2 and embeddings get no decay unless
// optim.decay_norms_and_embeddings is set.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "framework/checkpoint/safetensors.h"
#include "framework/config/run_config.h"

namespace attnlab {

class AdamW {
 public:
  AdamW(const NamedTensors& params, const OptimConfig& cfg);
  /// One update with learning rate `lr` from the parameters' .grad().
  void step(double lr);
  void zero_grad();
  /// exp_avg.<param> and exp_avg_sq.<param> for every parameter.
  NamedTensors state() const;
  /// Restores the moments from `tensors` (exactly the names, shapes and dtypes of state();
  /// `origin` names the file in errors) and the applied-step count.
  void load_state(const std::map<std::string, at::Tensor>& tensors, int64_t steps,
                  const std::string& origin);
  int64_t steps() const { return steps_; }
  bool decays(const std::string& name) const;

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
