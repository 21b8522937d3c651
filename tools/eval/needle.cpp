#include "tools/eval/needle.h"

#include <ATen/ops/from_blob.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <stdexcept>

namespace attnlab::eval {
namespace {

std::vector<int64_t> encoded(const Tokenizer& tok, const std::string& text) {
  const std::vector<int32_t> ids = tok.encode(text);
  return {ids.begin(), ids.end()};
}

}  // namespace

NeedleTrial make_needle_trial(const Tokenizer& tok, const TokenStream& haystack, int64_t length, double depth,
                              uint64_t seed) {
  std::mt19937_64 rng(seed);
  NeedleTrial t;
  t.key = std::to_string(10000 + static_cast<int64_t>(rng() % 90000));
  const std::vector<int64_t> needle =
      encoded(tok, fmt::format(" The pass key is {0}. Remember it. {0} is the pass key. ", t.key));
  const std::vector<int64_t> question = encoded(tok, " What is the pass key? The pass key is ");
  const std::vector<int64_t> answer = encoded(tok, t.key);
  const int64_t fixed = static_cast<int64_t>(needle.size() + question.size() + answer.size());
  const int64_t hay = length + 1 - fixed;
  if (hay < 0)
    throw std::invalid_argument(fmt::format("needle: length {} is shorter than the needle, question and answer "
                                            "({} tokens)", length, fixed - 1));
  if (haystack.size() < hay)
    throw std::invalid_argument(fmt::format("needle: {} has {} tokens, fewer than the {} of haystack a length of {} "
                                            "needs", haystack.name(), haystack.size(), hay, length));
  std::vector<int64_t> text(static_cast<size_t>(hay));
  const int64_t start = hay < haystack.size() ? static_cast<int64_t>(rng() % static_cast<uint64_t>(haystack.size() - hay)) : 0;
  if (hay > 0) haystack.read(start, hay, text.data());
  t.needle_at = static_cast<int64_t>(std::llround(std::clamp(depth, 0.0, 1.0) * static_cast<double>(hay)));
  t.tokens.assign(text.begin(), text.begin() + t.needle_at);
  t.tokens.insert(t.tokens.end(), needle.begin(), needle.end());
  t.tokens.insert(t.tokens.end(), text.begin() + t.needle_at, text.end());
  t.tokens.insert(t.tokens.end(), question.begin(), question.end());
  t.answer_begin = static_cast<int64_t>(t.tokens.size());
  t.tokens.insert(t.tokens.end(), answer.begin(), answer.end());
  return t;
}

std::vector<NeedleCell> run_needle(const LogitsFn& logits, const Tokenizer& tok, const TokenStream& haystack,
                                   const NeedleOptions& o) {
  std::vector<NeedleCell> out;
  for (const int64_t L : o.lengths)
    for (const double depth : o.depths) {
      std::vector<NeedleTrial> trials;
      std::vector<int64_t> flat;
      for (int64_t i = 0; i < o.trials; ++i) {
        // Each cell's trials have their own seeds; the same trial index shares its key and text
        // across depths, so a depth's effect is not confounded with the text.
        trials.push_back(make_needle_trial(tok, haystack, L, depth, o.seed * 1000003 + static_cast<uint64_t>(L * 131 + i)));
        flat.insert(flat.end(), trials.back().tokens.begin(), trials.back().tokens.begin() + L);
      }
      const at::Tensor inputs = at::from_blob(flat.data(), {o.trials, L}, at::kLong).clone();
      const at::Tensor predicted = logits(inputs).argmax(-1).to(at::kCPU).contiguous();
      const int64_t* p = predicted.const_data_ptr<int64_t>();
      NeedleCell cell{L, depth, 0, 0, o.trials};
      int64_t right_tokens = 0, answer_tokens = 0;
      for (int64_t i = 0; i < o.trials; ++i) {
        const NeedleTrial& t = trials[static_cast<size_t>(i)];
        bool all = true;
        for (int64_t a = t.answer_begin; a < static_cast<int64_t>(t.tokens.size()); ++a) {
          const bool right = p[i * L + a - 1] == t.tokens[static_cast<size_t>(a)];  // position a-1 predicts token a
          all &= right, right_tokens += right, ++answer_tokens;
        }
        cell.accuracy += all ? 1.0 / static_cast<double>(o.trials) : 0.0;
      }
      cell.token_accuracy = answer_tokens ? static_cast<double>(right_tokens) / static_cast<double>(answer_tokens) : 0;
      out.push_back(cell);
    }
  return out;
}

std::string needle_json(const std::vector<NeedleCell>& cells, const std::string& checkpoint) {
  nlohmann::json j = {{"task", "needle"}, {"checkpoint", checkpoint}, {"results", nlohmann::json::array()}};
  for (const NeedleCell& c : cells)
    j["results"].push_back({{"length", c.length}, {"depth", c.depth}, {"accuracy", c.accuracy},
                            {"token_accuracy", c.token_accuracy}, {"trials", c.trials}});
  return j.dump(1) + "\n";
}

std::string needle_table(const std::vector<NeedleCell>& cells) {
  std::set<int64_t> lengths;
  std::set<double> depths;
  std::map<std::pair<double, int64_t>, double> acc;
  for (const NeedleCell& c : cells) lengths.insert(c.length), depths.insert(c.depth), acc[{c.depth, c.length}] = c.accuracy;
  std::string out = "needle accuracy (rows: depth, columns: length)\n  depth";
  for (int64_t l : lengths) out += fmt::format(" {:>7}", l);
  out += "\n";
  for (double d : depths) {
    out += fmt::format("  {:>5.2f}", d);
    for (int64_t l : lengths) out += fmt::format(" {:>7.3f}", acc[{d, l}]);
    out += "\n";
  }
  return out;
}

}  // namespace attnlab::eval
