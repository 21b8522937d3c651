// Packed documents, for EVERY registered mixer and option variant (new mixers get this for free): a row holding
// documents [a | b | c] gives exactly the outputs and gradients of a, b and c run alone (fp64),
// with a boundary inside a kernel chunk and a one-token document. And the row layout itself:
// document ids from EOTs, rows and back, refusal of decreasing ids.
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <cctype>

#include "framework/config/run_config.h"
#include "framework/model/documents.h"
#include "framework/model/language_model.h"
#include "tests/common/mixer_variants.h"
#include "tests/common/test_util.h"

namespace attnlab {
namespace {

constexpr int64_t kDim = 32;

std::shared_ptr<Mixer> make_mixer(const testing::MixerVariant& variant) {
  auto m = MixerRegistry::instance().find(variant.type)->create(*variant.spec().options, MixerShape{kDim, 0, 2, 256});
  m->to(at::kDouble);
  return m;
}

std::vector<at::Tensor> gradients(Mixer& m, const at::Tensor& x) {
  std::vector<at::Tensor> g = {x.grad().clone()};
  for (auto& p : m.parameters()) g.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
  return g;
}

void zero_gradients(Mixer& m) {
  for (auto& p : m.parameters()) p.mutable_grad() = at::Tensor();
}

class PackedDocuments : public ::testing::TestWithParam<testing::MixerVariant> {
 protected:
  void SetUp() override { at::manual_seed(0); }
};

TEST_P(PackedDocuments, APackedRowEqualsItsDocumentsRunAlone) {
  auto m = make_mixer(GetParam());
  // Row 0: documents of 37 (ends inside the first 64-token chunk), 49 and 1 tokens; row 1: one.
  const std::vector<int64_t> lengths = {37, 49, 1};
  const int64_t T = 87;
  at::Tensor x = at::randn({2, T, kDim}, at::kDouble);
  at::Tensor w = at::randn({2, T, kDim}, at::kDouble);  // a loss that weighs every output
  at::Tensor docs = at::zeros({2, T}, at::kLong);
  docs[0].narrow(0, 37, 49).fill_(1);
  docs[0].narrow(0, 86, 1).fill_(2);
  MixerContext ctx;
  ctx.documents = docs;

  at::Tensor xp = x.clone().requires_grad_(true);
  at::Tensor packed = mix_documents(*m, xp, ctx);
  (packed * w).sum().backward();
  const auto packed_grads = gradients(*m, xp);
  zero_gradients(*m);

  // The same documents one by one, each from position 0.
  at::Tensor xs = x.clone().requires_grad_(true);
  std::vector<at::Tensor> alone;
  int64_t start = 0;
  for (int64_t len : lengths) {
    at::Tensor y = m->forward(xs[0].narrow(0, start, len).unsqueeze(0), {});
    (y * w[0].narrow(0, start, len).unsqueeze(0)).sum().backward(at::Tensor(), /*retain_graph=*/true);
    alone.push_back(y.detach()[0]);
    start += len;
  }
  at::Tensor whole = m->forward(xs[1].unsqueeze(0), {});
  (whole * w[1].unsqueeze(0)).sum().backward();
  const auto alone_grads = gradients(*m, xs);

  testing::expect_close("row 0 outputs", packed.detach()[0], at::cat(alone), 1e-10);
  testing::expect_close("row 1 (one document) outputs", packed.detach()[1], whole.detach()[0], 1e-10);
  testing::expect_close("input gradient", packed_grads[0], alone_grads[0], 1e-10);
  auto params = m->named_parameters();
  for (size_t i = 1; i < packed_grads.size(); ++i) {
    // A gradient that is zero by construction (MoH's top-1 routed gate is k·p/p = 1) is
    // round-off on both sides; compare it absolutely.
    if (alone_grads[i].abs().max().item<double>() < 1e-13) {
      EXPECT_LT(packed_grads[i].abs().max().item<double>(), 1e-13) << params[i - 1].key();
      continue;
    }
    testing::expect_close("gradient of " + params[i - 1].key(), packed_grads[i], alone_grads[i], 1e-10);
  }

  // Without the boundaries the second document does see the first (the check above is not vacuous).
  at::NoGradGuard ng;
  at::Tensor leaky = m->forward(x, {});
  EXPECT_GT(testing::rel_rms(leaky[0].narrow(0, 37, 49), packed.detach()[0].narrow(0, 37, 49)), 1e-6);
}

// Every registered mixer and option variant (tests/common/mixer_variants.h).
INSTANTIATE_TEST_SUITE_P(AllMixers, PackedDocuments, ::testing::ValuesIn(testing::contract_variants()),
                         [](const auto& info) { return testing::variant_test_name(info.param); });

TEST(DocumentRows, DocumentsStartAfterEachEotAndRowsRoundTrip) {
  const int64_t eot = 9;
  at::Tensor tokens = at::tensor({1, 2, 9, 3, 9, 9, 4, 5}, at::kLong).view({1, 8});
  at::Tensor docs = documents_from_eot(tokens, eot);
  EXPECT_TRUE(docs.equal(at::tensor({0, 0, 0, 1, 1, 2, 3, 3}, at::kLong).view({1, 8}))) << docs;
  const DocumentRows r = document_rows(docs);
  EXPECT_FALSE(r.trivial);
  EXPECT_EQ(r.rows, 4);
  EXPECT_EQ(r.row_length, 3);
  at::Tensor x = at::arange(16, at::kDouble).view({1, 8, 2});
  at::Tensor rows = to_rows(x, r);  // [4, 3, 2], zero padded
  EXPECT_EQ(rows.sizes(), (std::vector<int64_t>{4, 3, 2}));
  EXPECT_EQ(rows[2][1].abs().sum().item<double>(), 0) << "padding is zero";
  EXPECT_TRUE(rows[1][0].equal(x[0][3]));
  EXPECT_TRUE(from_rows(rows, r).equal(x));
  // One document per row needs nothing; decreasing ids are refused.
  EXPECT_TRUE(document_rows(at::zeros({3, 5}, at::kLong)).trivial);
  EXPECT_THROW(document_rows(at::tensor({0, 1, 0}, at::kLong).view({1, 3})), std::invalid_argument);
}

TEST(DocumentRows, AModelOnEotPackedTokensEqualsItsDocumentsAlone) {
  // A two-layer model of every kind of block in one pattern: softmax then gla.
  RunConfig cfg = load_run_config(ATTNLAB_SOURCE_DIR "/recipes/default.yaml",
                                  {"model.dim=32", "model.layers=2", "model.mixer.type=softmax"});
  cfg.model.pattern.push_back(default_mixer_spec("gla"));
  at::manual_seed(3);
  LanguageModel model(cfg.model);
  model->to(at::kDouble);
  at::NoGradGuard ng;
  const int64_t eot = 256;
  at::Tensor tokens = at::randint(0, 250, {1, 70}, at::kLong);
  tokens[0][29] = eot;  // document 0 is tokens 0..29 (its EOT included), document 1 the rest
  MixerContext ctx;
  ctx.documents = documents_from_eot(tokens, eot);
  at::Tensor packed = model->forward(tokens, ctx);
  at::Tensor first = model->forward(tokens.narrow(1, 0, 30), {});
  at::Tensor second = model->forward(tokens.narrow(1, 30, 40), {});
  testing::expect_close("document 0 logits", packed.narrow(1, 0, 30), first, 1e-10);
  testing::expect_close("document 1 logits", packed.narrow(1, 30, 40), second, 1e-10);
}

}  // namespace
}  // namespace attnlab
