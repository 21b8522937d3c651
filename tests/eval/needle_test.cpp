// Needle in a haystack: where the needle and the answer go, determinism, the scorer against
// oracle models that recall everything, all but one digit, or nothing, and the CLI end to end.
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "framework/data/prepare.h"
#include "tests/common/test_util.h"
#include "tools/eval/needle.h"

namespace attnlab::eval {
namespace {

std::shared_ptr<TokenStream> text_stream(const std::string& dir) {
  std::vector<int32_t> toks;
  const std::string text = "lorem ipsum dolor sit amet ";
  for (int i = 0; i < 4000; ++i) toks.push_back(static_cast<unsigned char>(text[i % text.size()]));
  write_shard(dir + "/val_000000.bin", toks);
  return std::make_shared<TokenStream>(dir, "val");
}

std::string decoded(const ByteTokenizer& tok, const std::vector<int64_t>& ids, size_t from, size_t n) {
  return tok.decode(std::vector<int32_t>(ids.begin() + from, ids.begin() + from + n));
}

TEST(Needle, TheNeedleSitsAtItsDepthAndTheAnswerEndsTheSequence) {
  const ByteTokenizer tok;
  auto hay = text_stream(testing::temp_dir("needle"));
  for (double depth : {0.0, 0.5, 1.0}) {
    const NeedleTrial t = make_needle_trial(tok, *hay, 200, depth, 3);
    ASSERT_EQ(t.tokens.size(), 201u);
    const std::string needle = fmt::format(" The pass key is {0}. Remember it. {0} is the pass key. ", t.key);
    const std::string question = " What is the pass key? The pass key is ";
    const int64_t hay_tokens = 201 - static_cast<int64_t>(needle.size() + question.size() + t.key.size());
    EXPECT_EQ(t.needle_at, std::llround(depth * static_cast<double>(hay_tokens)));
    EXPECT_EQ(decoded(tok, t.tokens, t.needle_at, needle.size()), needle);
    EXPECT_EQ(decoded(tok, t.tokens, t.answer_begin, t.key.size()), t.key);
    EXPECT_EQ(t.answer_begin + static_cast<int64_t>(t.key.size()), 201);
    EXPECT_EQ(decoded(tok, t.tokens, t.answer_begin - question.size(), question.size()), question);
    EXPECT_EQ(t.key.size(), 5u);
  }
  // Same seed, same trial; another seed, another key.
  EXPECT_EQ(make_needle_trial(tok, *hay, 200, 0.5, 3).tokens, make_needle_trial(tok, *hay, 200, 0.5, 3).tokens);
  EXPECT_NE(make_needle_trial(tok, *hay, 200, 0.5, 3).key, make_needle_trial(tok, *hay, 200, 0.5, 4).key);
  EXPECT_THROW(make_needle_trial(tok, *hay, 60, 0.5, 3), std::invalid_argument);  // no room for the needle
}

TEST(Needle, TheScorerCountsATrialOnlyWhenEveryAnswerTokenIsRight) {
  const ByteTokenizer tok;
  auto hay = text_stream(testing::temp_dir("needle"));
  NeedleOptions o;
  o.lengths = {160, 240}, o.depths = {0, 1}, o.trials = 3;
  // An oracle that knows each trial: one-hot logits of the true next token, optionally wrong on
  // the last answer digit.
  auto oracle = [&](bool miss_last_digit) {
    return [&, miss_last_digit](const at::Tensor& inputs) {
      const int64_t N = inputs.size(0), L = inputs.size(1);
      at::Tensor out = at::zeros({N, L, 257});
      for (int64_t i = 0; i < N; ++i) {
        // Find this row's trial among the ones run_needle built (same seeds).
        for (double depth : o.depths)
          for (int64_t k = 0; k < o.trials; ++k) {
            const NeedleTrial t = make_needle_trial(tok, *hay, L, depth, o.seed * 1000003 + static_cast<uint64_t>(L * 131 + k));
            bool same = true;
            for (int64_t p = 0; p < L && same; ++p) same = inputs[i][p].item<int64_t>() == t.tokens[p];
            if (!same) continue;
            for (int64_t p = 0; p < L; ++p) {
              int64_t next = t.tokens[p + 1];
              if (miss_last_digit && p + 1 == L) next = (next == '0') ? '1' : '0';
              out[i][p][next] = 1;
            }
          }
      }
      return out;
    };
  };
  for (const NeedleCell& c : run_needle(oracle(false), tok, *hay, o)) {
    EXPECT_EQ(c.accuracy, 1.0) << c.length << " " << c.depth;
    EXPECT_EQ(c.token_accuracy, 1.0);
  }
  for (const NeedleCell& c : run_needle(oracle(true), tok, *hay, o)) {
    EXPECT_EQ(c.accuracy, 0.0) << "one wrong digit fails the trial";
    EXPECT_NEAR(c.token_accuracy, 0.8, 1e-12) << "4 of 5 digits right";
  }
  const auto cells = run_needle(oracle(false), tok, *hay, o);
  const nlohmann::json j = nlohmann::json::parse(needle_json(cells, "ck"));
  EXPECT_EQ(j["results"].size(), 4u);
  EXPECT_EQ(j["results"][3]["length"], 240);
}

TEST(Needle, EvalWritesTheGridIntoTheRunFolder) {
  testing::TinyRun r;
  const std::string bin = ATTNLAB_BINARY;
  ASSERT_EQ(std::system(fmt::format("{} train {} --set train.steps=2 > /dev/null", bin, r.recipe).c_str()), 0);
  const std::string cmd = fmt::format("{} eval {} --task needle --lengths 128,160 --depths 0,0.5,1 --trials 2 "
                                      "--set model.max_seq_len=160 > {}/needle.txt", bin, r.run(), r.dir);
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const nlohmann::json j = nlohmann::json::parse(testing::read_file(r.run() + "/needle.json"));
  EXPECT_EQ(j["task"], "needle");
  EXPECT_EQ(j["results"].size(), 6u);
  for (const auto& cell : j["results"]) {
    EXPECT_GE(cell["accuracy"].get<double>(), 0.0);
    EXPECT_LE(cell["accuracy"].get<double>(), 1.0);
  }
  EXPECT_NE(testing::read_file(r.dir + "/needle.txt").find("needle accuracy"), std::string::npos);
  // A length beyond the model is refused by name (exit 2).
  const int rc = std::system(fmt::format("{} eval {} --task needle --lengths 4096 > /dev/null 2>&1", bin, r.run()).c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 2);
}

}  // namespace
}  // namespace attnlab::eval
