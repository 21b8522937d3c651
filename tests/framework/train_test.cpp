// Training machinery: sampler determinism and sharding, schedules, AdamW against its closed
// form, checkpoint atomicity, EXACT resume, the NaN guard, and loss falling end to end.
#include <ATen/ops/full.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/ones.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "framework/checkpoint/checkpoint.h"
#include "framework/data/prepare.h"
#include "framework/data/sampler.h"
#include "framework/dist/world.h"
#include "framework/train/trainer.h"
#include "tests/common/test_util.h"

namespace fs = std::filesystem;

namespace attnlab {
namespace {

using testing::TinyRun;

std::shared_ptr<const TokenStream> small_stream(const std::string& d) {
  std::vector<int32_t> toks(1000);
  for (int i = 0; i < 1000; ++i) toks[i] = i % 300;
  write_shard(d + "/train_000000.bin", toks);
  return std::make_shared<const TokenStream>(d, "train");
}

TEST(Sampler, DeterministicResumableAndRankDisjoint) {
  auto s = small_stream(testing::temp_dir("samp"));
  BatchSampler a(s, 10, 42), b(s, 10, 42), c(s, 10, 43);
  at::Tensor a1 = a.next(4), a2 = a.next(4);
  EXPECT_TRUE(at::equal(a1, b.next(4)));
  EXPECT_FALSE(at::equal(a1, c.next(4)));
  BatchSampler resumed(s, 10, 42);
  resumed.cursor = 4;
  EXPECT_TRUE(at::equal(a2, resumed.next(4)));
  // Two ranks see disjoint windows that together cover the single-rank order.
  BatchSampler r0(s, 10, 42, 0, 2), r1(s, 10, 42, 1, 2), one(s, 10, 42);
  at::Tensor x0 = r0.next(3), x1 = r1.next(3), all = one.next(6);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(at::equal(x0[i], all[2 * i]));
    EXPECT_TRUE(at::equal(x1[i], all[2 * i + 1]));
  }
  // Each window is seq_len+1 consecutive tokens.
  EXPECT_EQ((a1.select(1, 1) - a1.select(1, 0)).remainder(300).eq(1).all().item<bool>(), true);
}

TEST(Schedule, WarmupCosineWsdConstant) {
  OptimConfig o;
  o.lr = 1.0, o.min_lr_ratio = 0.1, o.warmup_steps = 10;
  EXPECT_DOUBLE_EQ(learning_rate(o, 0, 100), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(o, 9, 100), 1.0);
  EXPECT_NEAR(learning_rate(o, 55, 100), 0.55, 1e-12);  // cosine midpoint
  EXPECT_NEAR(learning_rate(o, 100, 100), 0.1, 1e-12);
  o.schedule = "wsd", o.decay_fraction = 0.2;
  EXPECT_DOUBLE_EQ(learning_rate(o, 50, 100), 1.0);
  EXPECT_NEAR(learning_rate(o, 100, 100), 0.1, 1e-12);
  EXPECT_NEAR(learning_rate(o, 91, 100), 0.55, 1e-12);
  o.schedule = "constant";
  EXPECT_DOUBLE_EQ(learning_rate(o, 80, 100), 1.0);
}

TEST(AdamW, MatchesClosedFormAndSkipsDecayForNorms) {
  OptimConfig o;
  o.beta1 = 0.9, o.beta2 = 0.99, o.eps = 1e-8, o.weight_decay = 0.5;
  at::Tensor w = at::full({2, 2}, 1.0, at::kDouble).requires_grad_(true);
  at::Tensor n = at::full({2}, 1.0, at::kDouble).requires_grad_(true);
  AdamW opt(NamedTensors{{"w", w}, {"norm.weight", n}}, o);
  EXPECT_TRUE(opt.decays("w"));
  EXPECT_FALSE(opt.decays("norm.weight"));
  w.mutable_grad() = at::full({2, 2}, 0.5, at::kDouble);
  n.mutable_grad() = at::full({2}, 0.5, at::kDouble);
  opt.step(0.1);
  // Step 1: m_hat = g, v_hat = g^2, so the update is lr * g/|g| = 0.1 (minus eps effects).
  const double upd = 0.1 * 0.5 / (0.5 + 1e-8);
  EXPECT_NEAR(w[0][0].item<double>(), 1.0 * (1 - 0.1 * 0.5) - upd, 1e-12);
  EXPECT_NEAR(n[0].item<double>(), 1.0 - upd, 1e-12);
}

TEST(World, ReadsTorchrunEnvironmentAndRejectsBadValues) {
  ::setenv("RANK", "0", 1), ::setenv("WORLD_SIZE", "1", 1), ::setenv("LOCAL_RANK", "0", 1);
  EXPECT_TRUE(world_from_env().is_main());
  ::setenv("RANK", "3", 1);
  EXPECT_THROW(world_from_env(), std::invalid_argument);
  ::setenv("RANK", "x", 1);
  EXPECT_THROW(world_from_env(), std::invalid_argument);
  ::unsetenv("RANK"), ::unsetenv("WORLD_SIZE"), ::unsetenv("LOCAL_RANK");
  EXPECT_EQ(world_from_env().world_size, 1);
  // torchrun's agent store, then the Slurm and Open MPI fallbacks.
  ::setenv("RANK", "1", 1), ::setenv("WORLD_SIZE", "4", 1), ::setenv("LOCAL_RANK", "1", 1);
  ::setenv("LOCAL_WORLD_SIZE", "2", 1), ::setenv("TORCHELASTIC_USE_AGENT_STORE", "True", 1);
  ::setenv("TORCHELASTIC_RESTART_COUNT", "3", 1);
  World t = world_from_env();
  EXPECT_EQ(t.world_size, 4);
  EXPECT_TRUE(t.agent_store);
  EXPECT_EQ(t.restart_count, 3);
  EXPECT_EQ(t.launcher, "torchrun");
  for (const char* v : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "TORCHELASTIC_USE_AGENT_STORE",
                        "TORCHELASTIC_RESTART_COUNT"})
    ::unsetenv(v);
  ::setenv("SLURM_PROCID", "5", 1), ::setenv("SLURM_NTASKS", "8", 1), ::setenv("SLURM_LOCALID", "1", 1);
  ::setenv("SLURM_NTASKS_PER_NODE", "4", 1);
  World s = world_from_env();
  EXPECT_EQ(s.rank, 5);
  EXPECT_EQ(s.world_size, 8);
  EXPECT_EQ(s.local_rank, 1);
  EXPECT_EQ(s.launcher, "slurm");
  for (const char* v : {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"}) ::unsetenv(v);
  ::setenv("OMPI_COMM_WORLD_RANK", "2", 1), ::setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  EXPECT_THROW(world_from_env(), std::invalid_argument);  // rank 2 of 2
  ::setenv("OMPI_COMM_WORLD_RANK", "1", 1);
  EXPECT_EQ(world_from_env().launcher, "mpi");
  ::unsetenv("OMPI_COMM_WORLD_RANK"), ::unsetenv("OMPI_COMM_WORLD_SIZE");
  // A multi-process world without a store address is an error naming what is missing.
  World two;
  two.world_size = 2;
  TinyRun r;
  try {
    Trainer t(r.config(), two, {false, false, true});
    ADD_FAILURE() << "joined a job with no MASTER_ADDR";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("needs MASTER_ADDR and MASTER_PORT"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, AtomicLatestAndPruning) {
  TinyRun r;
  {
    Trainer t(r.config(), World{}, {});
    for (int i = 0; i < 3; ++i) t.step(), t.save();
  }
  const std::string root = r.dir + "/runs/tiny/checkpoints";
  EXPECT_EQ(latest_checkpoint(r.dir + "/runs/tiny").value(), root + "/step-3");
  EXPECT_FALSE(fs::exists(root + "/step-1"));  // keep: 2
  EXPECT_TRUE(fs::exists(root + "/step-2"));
  for (const auto& e : fs::directory_iterator(root))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
  // A fresh (non-resume) run refuses to overwrite a run folder with checkpoints.
  EXPECT_THROW(Trainer(r.config(), World{}, {}), ConfigError);
}

TEST(Resume, ExactlyReproducesTheUninterruptedLossSequence) {
  TinyRun straight_run, split_run;
  Trainer straight(straight_run.config(), World{}, {false, true, true});
  straight.train();
  ASSERT_EQ(straight.losses().size(), 10u);

  std::vector<double> resumed_losses;
  {
    Trainer first(split_run.config(), World{}, {false, true, true});
    for (int i = 0; i < 5; ++i) first.step();
    first.save();
    resumed_losses = first.losses();
  }
  Trainer second(split_run.config(), World{}, {true, true, true});
  EXPECT_EQ(second.current_step(), 5);
  second.train();
  resumed_losses.insert(resumed_losses.end(), second.losses().begin(), second.losses().end());
  ASSERT_EQ(resumed_losses.size(), 10u);
  for (size_t i = 0; i < 10; ++i)
    EXPECT_EQ(straight.losses()[i], resumed_losses[i]) << "step " << i + 1;  // bit-identical
}

TEST(Resume, RefusesACheckpointOfADifferentModel) {
  TinyRun r;
  {
    Trainer t(r.config(), World{}, {false, true, true});
    t.step(), t.save();
  }
  EXPECT_THROW(Trainer(r.config({"model.dim=48"}), World{}, {true, true, true}), ConfigError);
}

TEST(NanGuard, SkipsOrStopsOnANonFiniteLoss) {
  TinyRun r;
  Trainer t(r.config(), World{}, {false, false, true});
  {
    at::NoGradGuard ng;
    t.model()->embed_tokens->weight.fill_(std::numeric_limits<double>::quiet_NaN());
  }
  StepResult s = t.step();
  EXPECT_TRUE(s.skipped);
  Trainer stop(r.config({"train.nan_policy=stop"}), World{}, {false, false, true});
  {
    at::NoGradGuard ng;
    stop.model()->embed_tokens->weight.fill_(std::numeric_limits<double>::infinity());
  }
  try {
    stop.step();
    ADD_FAILURE() << "expected a stop";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite loss at step 1 (micro-batch 0, data cursor 0"),
              std::string::npos) << e.what();
  }
}

TEST(EndToEnd, DefaultRecipeLossFallsOnTheEmbeddedCorpus) {
  // The real default recipe and corpus, shortened: byte-level loss starts near ln(256) ~ 5.5.
  if (!fs::exists("/usr/share/games/fortunes")) GTEST_SKIP() << "fortunes package not installed";
  const std::string d = testing::temp_dir("e2e");
  RunConfig cfg = load_run_config(ATTNLAB_SOURCE_DIR "/recipes/default.yaml",
                                  {"run.dir=" + d, "data.dir=" + d + "/data", "train.steps=40",
                                   "train.batch_size=8", "data.seq_len=128", "eval.every=0"});
  Trainer t(cfg, World{}, {false, true, true});
  t.train();
  const auto& l = t.losses();
  EXPECT_GT(l.front(), 5.0);
  EXPECT_LT(l.front(), 6.2);
  double tail = 0;
  for (size_t i = l.size() - 5; i < l.size(); ++i) tail += l[i] / 5;
  EXPECT_LT(tail, 3.3) << "mean of the last 5 losses";
  EXPECT_LT(t.evaluate(), 3.4);
  EXPECT_TRUE(fs::exists(d + "/default/metrics.jsonl"));
  EXPECT_TRUE(fs::exists(d + "/default/config.yaml"));
}

}  // namespace
}  // namespace attnlab
