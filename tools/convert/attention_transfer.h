// Stage 1 of a linearization, attention transfer (docs/conversion.md, "Linearizing"): the frozen
// teacher runs on the batch; each converted layer's student mixer gets that layer's teacher input
// and is trained to reproduce the teacher mixer's output (mean squared error per layer; with the
// teacher's Wo inherited and frozen, a zero MSE here is a zero MSE before Wo) and, with a
// cross-entropy factor, its attention weights (−Σ_j a_teacher log a_student per query row).
// The L×L weights exist for one layer at a time: the teacher's forward never stores them, and
// the cross entropy computes each layer's pair, uses it and lets it go before the next.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "framework/train/hooks.h"

namespace attnlab::convert {

class AttentionTransfer : public TrainingHooks {
 public:
  /// `teacher` is frozen here (eval mode, no gradients). `start` is the student as
  /// take_teacher_weights left it; prepare() copies it and trains only `trained` of it.
  AttentionTransfer(LanguageModel teacher, LanguageModel start, std::vector<std::string> trained,
                    std::vector<int64_t> converted, double mse_factor, double xent_factor = 0);

  void prepare(LanguageModel& student) override;
  std::optional<MicroBatchLoss> loss(LanguageModel& student, const at::Tensor& inputs, const at::Tensor& targets,
                                     const MixerContext& ctx) override;
  /// mse/layer<i> for every converted layer and mse/mean (with a cross-entropy factor also
  /// xent/layer<i> and xent/mean), the quantities the loss averages, and teacher_loss, the
  /// teacher's next-token loss on the same batch.
  std::map<std::string, double> validate(LanguageModel& student, const at::Tensor& inputs, const at::Tensor& targets,
                                         const MixerContext& ctx) override;

  /// One converted layer's terms on a batch (0-dim, differentiable in the student); xent is
  /// undefined without a cross-entropy factor.
  struct LayerTerms {
    at::Tensor mse, xent;
  };
  /// The terms of every converted layer, in `converted` order; `teacher_logits`, when given,
  /// receives the teacher's logits.
  std::vector<LayerTerms> layer_terms(LanguageModel& student, const at::Tensor& inputs, const MixerContext& ctx,
                                      at::Tensor* teacher_logits = nullptr);

 private:
  LanguageModel teacher_, start_;
  std::vector<std::string> trained_;
  std::vector<int64_t> converted_;
  double mse_factor_, xent_factor_;
};

}  // namespace attnlab::convert
