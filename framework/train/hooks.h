// What a training run may do besides next-token training of a model built from its config: the
// linearization stages of docs/conversion.md load a teacher's weights, freeze most of them, add
// LoRA adapters and minimise their own losses through these hooks. A run without hooks is the
// plain run (docs/training.md).
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "framework/model/language_model.h"

namespace attnlab {

/// The loss of one micro-batch: `loss` is minimised and logged as train/loss; each term is
/// added weight × value (weight 0: logged only) and logged as train/aux/<name>.
struct MicroBatchLoss {
  at::Tensor loss;
  std::vector<AuxLoss> terms;
};

class TrainingHooks {
 public:
  virtual ~TrainingHooks() = default;
  /// After the model is built (weights drawn from run.seed) and before the optimizer collects
  /// the parameters that require gradients, or a resume loads a checkpoint into them: load
  /// weights, freeze (requires_grad false), register adapters.
  virtual void prepare(LanguageModel& /*model*/) {}
  /// Before every forward of the model, in training and in validation (under no-grad there).
  virtual void before_forward(LanguageModel& /*model*/) {}
  /// The loss of a micro-batch; nullopt: next-token cross entropy plus the mixers' aux losses.
  virtual std::optional<MicroBatchLoss> loss(LanguageModel& /*model*/, const at::Tensor& /*inputs*/,
                                             const at::Tensor& /*targets*/, const MixerContext& /*ctx*/) {
    return std::nullopt;
  }
  /// Extra values of one validation batch (under no-grad), averaged over eval.batches and logged
  /// as val/<name> next to val/loss.
  virtual std::map<std::string, double> validate(LanguageModel& /*model*/, const at::Tensor& /*inputs*/,
                                                 const at::Tensor& /*targets*/, const MixerContext& /*ctx*/) {
    return {};
  }
};

}  // namespace attnlab
