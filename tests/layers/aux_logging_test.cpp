// The softmax-family auxiliary losses reach the trainer: MoH's load balance and SSA's
// alignment are logged as train/aux/<name> in metrics.jsonl, and the logged values move when
// their weights change (a weight the trainer ignored would leave them equal).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "framework/train/trainer.h"
#include "tests/common/test_util.h"

namespace attnlab {
namespace {

/// The logged train/aux/<name> values of a 8-step run of `mixer` (YAML flow map) in a tiny model.
std::vector<double> logged(const std::string& mixer, const std::string& name) {
  testing::TinyRun r;
  {
    Trainer t(r.config({"model.mixer=" + mixer, "log.every=1", "train.steps=8"}), World{}, {false, true, true});
    t.train();
  }
  std::vector<double> out;
  std::istringstream in(testing::read_file(r.run() + "/metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("train/aux/" + name)) out.push_back(j["train/aux/" + name].get<double>());
  }
  return out;
}

TEST(AuxLogging, MohBalanceIsLoggedAndFollowsItsWeight) {
  const auto off = logged("{type: moh, heads: 4, shared_heads: 0, top_k: 1, balance_weight: 0}", "moh_balance");
  const auto on = logged("{type: moh, heads: 4, shared_heads: 0, top_k: 1, balance_weight: 50}", "moh_balance");
  ASSERT_EQ(off.size(), 8u);
  ASSERT_EQ(on.size(), 8u);
  EXPECT_DOUBLE_EQ(off.front(), on.front());  // same seed, nothing learned yet
  EXPECT_GT(std::abs(off.back() - on.back()), 1e-4);
}

TEST(AuxLogging, SsaAlignmentIsLoggedAndFollowsItsWeight) {
  // Blocks of 4 and 2 per query: the sparse stream differs from the full one at seq_len 32.
  const std::string base = "{type: ssa, heads: 4, block_size: 4, block_count: 2, align_weight: ";
  const auto off = logged(base + "0}", "ssa_align"), on = logged(base + "1000}", "ssa_align");
  ASSERT_EQ(off.size(), 8u);
  ASSERT_EQ(on.size(), 8u);
  EXPECT_GT(off.front(), 0);
  EXPECT_DOUBLE_EQ(off.front(), on.front());
  EXPECT_LT(on.back(), off.back());  // a large weight pulls the two streams together
}

}  // namespace
}  // namespace attnlab
