#include "tools/convert/attention_transfer.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/log.h>
#include <ATen/ops/mse_loss.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/stack.h>
#include <fmt/format.h>

#include <algorithm>

#include "framework/checkpoint/tensor_copy.h"
#include "framework/model/documents.h"
#include "framework/train/setup.h"

namespace attnlab::convert {

AttentionTransfer::AttentionTransfer(LanguageModel teacher, LanguageModel start, std::vector<std::string> trained,
                                     std::vector<int64_t> converted, double mse_factor, double xent_factor)
    : teacher_(std::move(teacher)),
      start_(std::move(start)),
      trained_(std::move(trained)),
      converted_(std::move(converted)),
      mse_factor_(mse_factor),
      xent_factor_(xent_factor) {
  teacher_->eval();
  for (auto& p : teacher_->parameters()) p.set_requires_grad(false);
}

void AttentionTransfer::prepare(LanguageModel& student) {
  at::NoGradGuard no_grad;
  const NamedTensors from = named_parameters(start_);
  copy_tensors_exact(named_parameters(student), std::map<std::string, at::Tensor>(from.begin(), from.end()),
                     "the student built from the teacher");
  for (auto& [name, p] : named_parameters(student))
    p.set_requires_grad(std::count(trained_.begin(), trained_.end(), name) > 0);
  start_ = nullptr;  // the trainer's model holds the weights now
}

namespace {

/// Mean over query rows (and heads) of −Σ_j a_teacher,ij · log max(a_student,ij, 1e-12), one
/// layer: the teacher's and the student's weights for the layer input `in` [B, T, D]. Packed
/// documents run as rows of their own (the weights are per document), padding rows excluded.
at::Tensor weight_cross_entropy(Mixer& teacher, Mixer& student, const at::Tensor& in, const MixerContext& ctx) {
  MixerContext inner = ctx;
  inner.on_mixer = nullptr;
  at::Tensor x = in, real_rows;  // real_rows [N, L]: 1 for a token, 0 for padding
  if (ctx.documents.defined()) {
    const DocumentRows rows = document_rows_of(ctx);
    x = to_rows(in, rows);
    real_rows = to_rows(at::ones({in.size(0), in.size(1), 1}, in.options()), rows).squeeze(-1);
    inner.documents = at::Tensor(), inner.positions = at::Tensor(), inner.document_rows = nullptr;
  }
  at::Tensor target;
  {
    at::NoGradGuard no_grad;
    target = teacher.attention_weights(x, inner);
  }
  const at::Tensor pred = student.attention_weights(x, inner);
  TORCH_CHECK(target.defined() && pred.defined(), "attention transfer: the cross entropy needs attention weights");
  const at::Tensor ce = -(target.to(pred.scalar_type()) * at::log(pred.clamp_min(1e-12))).sum(-1);  // [N, H, L]
  if (!real_rows.defined()) return ce.mean();
  const at::Tensor w = real_rows.to(ce.scalar_type()).unsqueeze(1).expand_as(ce);
  return (ce * w).sum() / w.sum();
}

}  // namespace

std::vector<AttentionTransfer::LayerTerms> AttentionTransfer::layer_terms(LanguageModel& student,
                                                                          const at::Tensor& inputs,
                                                                          const MixerContext& ctx,
                                                                          at::Tensor* teacher_logits) {
  std::map<int64_t, std::pair<at::Tensor, at::Tensor>> seen;  // layer -> teacher mixer (input, output)
  {
    at::NoGradGuard no_grad;
    MixerContext tctx = ctx;
    tctx.training = false;
    tctx.on_mixer = [&](int64_t layer, const at::Tensor& in, const at::Tensor& out) {
      if (std::count(converted_.begin(), converted_.end(), layer)) seen[layer] = {in, out};
    };
    at::Tensor logits = teacher_->forward(inputs, tctx);
    if (teacher_logits) *teacher_logits = logits;
  }
  std::vector<LayerTerms> terms;
  MixerContext sctx = ctx;
  sctx.on_mixer = nullptr;
  for (int64_t l : converted_) {
    const auto& [in, out] = seen.at(l);
    Mixer& mixer = *student->layers[static_cast<size_t>(l)]->mixer;
    at::Tensor y = mix_documents(mixer, in, sctx);
    LayerTerms t{at::mse_loss(y.to(out.scalar_type()), out), {}};
    if (xent_factor_ > 0) t.xent = weight_cross_entropy(*teacher_->layers[static_cast<size_t>(l)]->mixer, mixer, in, sctx);
    terms.push_back(t);
  }
  return terms;
}

std::optional<MicroBatchLoss> AttentionTransfer::loss(LanguageModel& student, const at::Tensor& inputs,
                                                      const at::Tensor& /*targets*/, const MixerContext& ctx) {
  const std::vector<LayerTerms> terms = layer_terms(student, inputs, ctx);
  std::vector<at::Tensor> mse, xent;
  MicroBatchLoss out;
  for (size_t i = 0; i < terms.size(); ++i) {
    mse.push_back(terms[i].mse);
    out.terms.push_back({fmt::format("mse/layer{}", converted_[i]), terms[i].mse.detach(), 0.0});
    if (!terms[i].xent.defined()) continue;
    xent.push_back(terms[i].xent);
    out.terms.push_back({fmt::format("xent/layer{}", converted_[i]), terms[i].xent.detach(), 0.0});
  }
  out.loss = mse_factor_ * at::stack(mse).mean();
  if (!xent.empty()) out.loss = out.loss + xent_factor_ * at::stack(xent).mean();
  return out;
}

std::map<std::string, double> AttentionTransfer::validate(LanguageModel& student, const at::Tensor& inputs,
                                                          const at::Tensor& targets, const MixerContext& ctx) {
  at::Tensor logits;
  const std::vector<LayerTerms> terms = layer_terms(student, inputs, ctx, &logits);
  std::map<std::string, double> out;
  double mse = 0, xent = 0;
  for (size_t i = 0; i < terms.size(); ++i) {
    const double e = terms[i].mse.item<double>();
    out[fmt::format("mse/layer{}", converted_[i])] = e;
    mse += e;
    if (!terms[i].xent.defined()) continue;
    const double c = terms[i].xent.item<double>();
    out[fmt::format("xent/layer{}", converted_[i])] = c;
    xent += c;
  }
  const double n = static_cast<double>(terms.size());
  out["mse/mean"] = mse / n;
  if (xent_factor_ > 0) out["xent/mean"] = xent / n;
  out["teacher_loss"] =
      at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1})).item<double>();
  return out;
}

}  // namespace attnlab::convert
