// data.source: mqar: the structure Zoology defines (bindings, one query per key, answers only
// scored), the gap distribution, determinism, rank sharding and resume, the trainer's
// answer-only loss and accuracy, and the config errors.
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/equal.h>
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "framework/data/mqar.h"
#include "framework/train/setup.h"
#include "framework/train/trainer.h"
#include "tests/common/test_util.h"

namespace attnlab {
namespace {

MqarSource source(MqarConfig c, int64_t T, int64_t V, uint64_t seed = 1, bool val = false, int64_t rank = 0,
                  int64_t world = 1) {
  return MqarSource(std::move(c), MqarShape{T, V}, seed, val, rank, world);
}

TEST(Mqar, EveryExampleHasTheBindingsThenOneQueryPerKeyAndOnlyAnswersScored) {
  MqarConfig c;
  c.pairs = 6, c.random_non_queries = false;
  const int64_t T = 40, V = 64, P = c.pairs;
  MqarSource s = source(c, T, V);
  TokenBatch b = s.next(50);
  ASSERT_EQ(b.inputs.sizes(), (std::vector<int64_t>{50, T}));
  for (int64_t e = 0; e < 50; ++e) {
    auto in = b.inputs[e], tg = b.targets[e];
    std::map<int64_t, int64_t> bound;  // key -> value
    std::set<int64_t> values;
    for (int64_t i = 0; i < P; ++i) {
      const int64_t k = in[2 * i].item<int64_t>(), v = in[2 * i + 1].item<int64_t>();
      EXPECT_GE(k, 1);
      EXPECT_LT(k, V / 2);
      EXPECT_GE(v, V / 2);
      EXPECT_LT(v, V);
      EXPECT_TRUE(bound.emplace(k, v).second) << "keys are distinct";
      EXPECT_TRUE(values.insert(v).second) << "values are distinct";
    }
    std::set<int64_t> queried;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t x = in[t].item<int64_t>(), y = tg[t].item<int64_t>();
      if (t < 2 * P) {
        EXPECT_EQ(y, kIgnoreTarget) << "no answer inside the bindings";
      } else if (y != kIgnoreTarget) {
        EXPECT_EQ((t - 2 * P) % 2, 0) << "queries sit at even offsets after the bindings";
        ASSERT_TRUE(bound.count(x)) << "a scored position holds a bound key";
        EXPECT_EQ(y, bound[x]) << "and its target is that key's value";
        EXPECT_TRUE(queried.insert(x).second) << "each key is queried once";
      } else {
        EXPECT_EQ(x, 0) << "fillers are 0 without random_non_queries";
      }
    }
    EXPECT_EQ(queried.size(), static_cast<size_t>(P));
  }
  // random_non_queries fills exactly the filler positions; bindings and queries stay.
  c.random_non_queries = true;
  TokenBatch r = source(c, T, V).next(50);
  EXPECT_TRUE(at::equal(r.targets, b.targets));
  const at::Tensor filler = b.inputs.eq(0);
  EXPECT_TRUE(at::equal(r.inputs.masked_select(filler.logical_not()), b.inputs.masked_select(filler.logical_not())));
  EXPECT_GT(r.inputs.masked_select(filler).ne(0).to(at::kDouble).mean().item<double>(), 0.9);
}

TEST(Mqar, GapsFollowThePowerLawOrAreUniform) {
  // One pair: the query gap g has exactly p(g) ∝ (g + 1)^(a - 1) over [0, space).
  MqarConfig c;
  c.pairs = 1, c.random_non_queries = false, c.train_examples = 0;
  const int64_t space = 16, T = 2 + 2 * space, N = 20000;
  auto gap_counts = [&](const MqarConfig& cfg) {
    TokenBatch b = source(cfg, T, 64, 3).next(N);
    std::vector<double> n(space);
    auto pos = b.targets.ne(kIgnoreTarget).to(at::kLong).argmax(1);
    for (int64_t e = 0; e < N; ++e) n[(pos[e].item<int64_t>() - 2) / 2] += 1;
    return n;
  };
  std::vector<double> p(space);
  double z = 0;
  for (int64_t g = 0; g < space; ++g) z += p[g] = c.power_a * std::pow(g + 1.0, c.power_a - 1);
  const std::vector<double> n = gap_counts(c);
  for (int64_t g : {0, 1, 7, 15}) {
    const double q = p[g] / z, sd = std::sqrt(N * q * (1 - q));
    EXPECT_NEAR(n[g], N * q, 4 * sd) << "gap " << g;
  }
  c.gaps = "uniform";
  const std::vector<double> u = gap_counts(c);
  const double q = 1.0 / space, sd = std::sqrt(N * q * (1 - q));
  for (int64_t g : {0, 15}) EXPECT_NEAR(u[g], N * q, 4 * sd) << "uniform gap " << g;
}

TEST(Mqar, DeterministicFromTheSeedShardedByRankAndResumable) {
  MqarConfig c;
  c.train_examples = 37;
  MqarSource a = source(c, 64, 128), b = source(c, 64, 128), other = source(c, 64, 128, 2);
  TokenBatch a1 = a.next(4), a2 = a.next(4);
  EXPECT_TRUE(at::equal(a1.inputs, b.next(4).inputs));
  EXPECT_FALSE(at::equal(a1.inputs, other.next(4).inputs));
  MqarSource resumed = source(c, 64, 128);
  resumed.cursor = 4;
  EXPECT_TRUE(at::equal(a2.inputs, resumed.next(4).inputs));
  MqarSource r0 = source(c, 64, 128, 1, false, 0, 2), r1 = source(c, 64, 128, 1, false, 1, 2),
             one = source(c, 64, 128);
  TokenBatch x0 = r0.next(3), x1 = r1.next(3), all = one.next(6);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(at::equal(x0.inputs[i], all.inputs[2 * i]));
    EXPECT_TRUE(at::equal(x1.targets[i], all.targets[2 * i + 1]));
  }
  // A fixed training set repeats after train_examples samples (in a new order); validation is
  // another stream, the same for every call.
  MqarSource epochs = source(c, 64, 128);
  std::set<std::vector<int64_t>> seen;
  TokenBatch e = epochs.next(74);
  for (int64_t i = 0; i < 74; ++i) {
    auto row = e.inputs[i].contiguous();
    seen.emplace(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + 64);
  }
  EXPECT_EQ(seen.size(), 37u);
  MqarSource val = source(c, 64, 128, 1, true);
  EXPECT_TRUE(at::equal(val.sequential(0, 4).inputs, val.sequential(0, 4).inputs));
  EXPECT_FALSE(at::equal(val.sequential(0, 4).inputs, source(c, 64, 128).sequential(0, 4).inputs));
}

RunConfig mqar_config(const testing::TinyRun& r, std::vector<std::string> sets = {}) {
  sets.insert(sets.begin(), {"data.source=mqar", "data.mqar.pairs=4", "data.mqar.val_examples=16",
                             "model.vocab_size=64", "eval.batches=2"});
  return r.config(sets);
}

TEST(Mqar, TheTrainerScoresAnswersOnlyAndReportsTheirAccuracy) {
  testing::TinyRun r;
  RunConfig cfg = mqar_config(r);
  Trainer t(cfg, World{}, {false, false, true});
  const double trainer_loss = t.evaluate();
  ASSERT_TRUE(t.last_validation().count("accuracy"));
  // By hand: the same validation examples, cross entropy and argmax over the answers alone.
  auto val = make_data_source(cfg, "val");
  at::NoGradGuard ng;
  double loss = 0, correct = 0, scored = 0;
  for (int64_t b = 0; b < 2; ++b) {
    TokenBatch batch = val->sequential(b * cfg.train.batch_size, cfg.train.batch_size);
    MixerContext ctx;
    at::Tensor logits = t.model()->forward(batch.inputs, ctx);
    const at::Tensor answer = batch.targets.ne(kIgnoreTarget);
    at::Tensor picked = logits.index({answer}), want = batch.targets.index({answer});
    loss += at::cross_entropy_loss(picked, want).item<double>() / 2;
    correct += picked.argmax(-1).eq(want).sum().item<double>();
    scored += static_cast<double>(want.numel());
  }
  EXPECT_EQ(scored, 2 * cfg.train.batch_size * 4.0) << "pairs answers per example";
  EXPECT_NEAR(trainer_loss, loss, 1e-5);
  EXPECT_NEAR(t.last_validation().at("accuracy"), correct / scored, 1e-12);
  // Shards have no accuracy to report.
  Trainer plain(r.config(), World{}, {false, false, true});
  plain.evaluate();
  EXPECT_FALSE(plain.last_validation().count("accuracy"));
}

TEST(Mqar, ImpossibleShapesAndIncompatibleOptionsAreConfigErrors) {
  testing::TinyRun r;
  auto error_of = [&](std::vector<std::string> sets) {
    return testing::config_error([&] { Trainer(mqar_config(r, sets), World{}, {false, false, true}); });
  };
  EXPECT_NE(error_of({"data.seq_len=31"}).find("data.seq_len (31) must be even"), std::string::npos);
  EXPECT_NE(error_of({"data.mqar.pairs=9"}).find("data.mqar.pairs (9) needs 4 * pairs <= data.seq_len (32)"),
            std::string::npos);
  EXPECT_NE(error_of({"model.vocab_size=8"}).find("model.vocab_size (8) has 3 key tokens"), std::string::npos);
  EXPECT_NE(error_of({"data.pack=documents"}).find("data.pack: documents needs token shards"), std::string::npos);
  EXPECT_NE(error_of({"parallel.cp=2"}).find("parallel.cp must be 1"), std::string::npos);
}

}  // namespace
}  // namespace attnlab
