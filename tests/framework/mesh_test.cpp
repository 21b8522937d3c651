// The parallel plan of a run (framework/train/mesh.h): the dp x cp mesh, the refusal of
// context parallelism for a mixer without a strategy (naming the layer), and
// parallel.cp_strategy (preference order, unknown names, names no layer implements).
#include <gtest/gtest.h>

#include "framework/config/config_error.h"
#include "framework/train/mesh.h"
#include "tests/common/test_util.h"

namespace attnlab {
namespace {
using testing::config_error;

RunConfig hybrid(const std::string& cp_strategy) {
  return load_run_config(ATTNLAB_SOURCE_DIR "/recipes/default.yaml",
                         {"model.pattern=[{type: gla}, {type: softmax}]", "parallel.cp_strategy=" + cp_strategy});
}


// A mixer that implements no context-parallel strategy (every registered one does today).
struct NoStrategy : Mixer {
  at::Tensor forward(const at::Tensor& x, const MixerContext&) override { return x; }
  std::unique_ptr<MixerState> init_state(int64_t, int64_t) override { return nullptr; }
  at::Tensor step(const at::Tensor& x, MixerState&) override { return x; }
  void init_parameters(const InitScales&) override {}
};

TEST(Mesh, RanksSplitIntoDataAndContextGroups) {
  RunConfig cfg = hybrid("auto");
  cfg.parallel.cp = 2;
  World w;
  w.world_size = 6, w.rank = 3;
  const Mesh m = make_mesh(cfg, w);
  EXPECT_EQ(m.dp, 3);
  EXPECT_EQ(m.dp_rank, 1);
  EXPECT_EQ(m.cp_rank, 1);
  cfg.parallel.cp = 4;
  EXPECT_NE(config_error([&] { make_mesh(cfg, w); }).find("parallel.cp 4 does not divide the 6 processes"),
            std::string::npos);
}

TEST(Mesh, EachLayerTakesItsFirstPreferredStrategy) {
  RunConfig cfg = hybrid("state_scan");
  LanguageModel model(cfg.model);
  EXPECT_EQ(describe_cp_plan(*model, cp_preference(cfg, *model), 2), "layers: gla state_scan, softmax ulysses");
  EXPECT_EQ(describe_cp_plan(*model, {}, 2), "layers: gla state_gather, softmax ulysses");
  // Ulysses needs the ranks to divide softmax's 4 heads: at 8 it falls back to allgather_kv.
  EXPECT_EQ(describe_cp_plan(*model, {}, 8), "layers: gla state_gather, softmax allgather_kv");
  cfg.parallel.cp_strategy = "allgather_kv, state_gather";
  EXPECT_EQ(cp_preference(cfg, *model), (std::vector<CpStrategy>{CpStrategy::allgather_kv, CpStrategy::state_gather}));
}

TEST(Mesh, BadStrategyNamesAreRefusedWithWhatExists) {
  RunConfig cfg = hybrid("auto");
  cfg.model.pattern = {default_mixer_spec("gla")};
  LanguageModel model(cfg.model);
  cfg.parallel.cp_strategy = "state_gahter";
  EXPECT_NE(config_error([&] { cp_preference(cfg, *model); }).find("parallel.cp_strategy: unknown strategy 'state_gahter'"),
            std::string::npos);
  cfg.parallel.cp_strategy = "allgather_kv";
  EXPECT_NE(config_error([&] { cp_preference(cfg, *model); })
                .find("no layer's mixer implements 'allgather_kv' (layer 0 gla: state_gather, state_scan"),
            std::string::npos);
  cfg.parallel.cp_strategy = "ulysses";  // softmax has it, but no layer of this model is softmax
  EXPECT_NE(config_error([&] { cp_preference(cfg, *model); }).find("no layer's mixer implements 'ulysses'"),
            std::string::npos);
}

TEST(Mesh, AMixerWithoutAStrategyIsRefusedByLayer) {
  RunConfig cfg = hybrid("auto");
  LanguageModel model(cfg.model);
  EXPECT_EQ(config_error([&] { check_context_parallel(*model, 2); }), "no ConfigError");
  model->layers[1]->mixer = std::make_shared<NoStrategy>();
  model->layers[1]->mixer_type = "nostrategy";
  EXPECT_NE(config_error([&] { check_context_parallel(*model, 2); })
                .find("parallel.cp 2: layer 1's mixer 'nostrategy' declares no context-parallel strategy"),
            std::string::npos);
}

}  // namespace
}  // namespace attnlab
