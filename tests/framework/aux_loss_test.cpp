// Auxiliary losses (framework/model/mixer.h, AuxLoss): the model collects every block's by
// name, sums a name over the blocks that report it, keeps first-seen order, and the values stay
// differentiable (the trainer adds weight × value to the loss).
#include <ATen/ops/ones.h>
#include <ATen/ops/tensor.h>
#include <gtest/gtest.h>

#include "framework/config/run_config.h"
#include "framework/model/language_model.h"

namespace attnlab {
namespace {

// Passes x through and reports the losses it was given, scaled by a learnable parameter.
struct Reporting : Mixer {
  std::vector<std::pair<std::string, double>> reports;
  at::Tensor gain;
  explicit Reporting(std::vector<std::pair<std::string, double>> r) : reports(std::move(r)) {
    gain = register_parameter("gain", at::ones({}, at::kDouble));
  }
  at::Tensor forward(const at::Tensor& x, const MixerContext&) override { return x; }
  std::unique_ptr<MixerState> init_state(int64_t, int64_t) override { return nullptr; }
  at::Tensor step(const at::Tensor& x, MixerState&) override { return x; }
  void init_parameters(const InitScales&) override {}
  std::vector<AuxLoss> aux_losses() override {
    std::vector<AuxLoss> out;
    for (const auto& [name, v] : reports) out.push_back({name, gain * v, 0.01});
    return out;
  }
};

TEST(AuxLosses, AreSummedByNameOverBlocksInFirstSeenOrder) {
  RunConfig cfg = load_run_config(ATTNLAB_SOURCE_DIR "/recipes/default.yaml", {"model.layers=3"});
  LanguageModel model(cfg.model);
  auto a = std::make_shared<Reporting>(std::vector<std::pair<std::string, double>>{{"balance", 1.5}, {"z", 2.0}});
  auto b = std::make_shared<Reporting>(std::vector<std::pair<std::string, double>>{{"router", 4.0}, {"balance", 0.25}});
  model->layers[0]->mixer = a;
  model->layers[2]->mixer = b;  // layer 1 (softmax) reports nothing
  const std::vector<AuxLoss> losses = model->aux_losses();
  ASSERT_EQ(losses.size(), 3u);
  EXPECT_EQ(losses[0].name, "balance");
  EXPECT_EQ(losses[1].name, "z");
  EXPECT_EQ(losses[2].name, "router");
  EXPECT_DOUBLE_EQ(losses[0].value.item<double>(), 1.75);
  EXPECT_DOUBLE_EQ(losses[2].value.item<double>(), 4.0);
  EXPECT_DOUBLE_EQ(losses[0].weight, 0.01);
  losses[0].value.backward();  // d(1.5 g_a + 0.25 g_b)
  EXPECT_DOUBLE_EQ(a->gain.grad().item<double>(), 1.5);
  EXPECT_DOUBLE_EQ(b->gain.grad().item<double>(), 0.25);
}

}  // namespace
}  // namespace attnlab
