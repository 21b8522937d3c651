// Needle in a haystack (passkey retrieval) on a trained model (docs/ablations.md, "Needle"):
// a sentence holding a random 5-digit pass key is put at a given depth of a stretch of real
// text (the run's validation split), the sequence ends with a question whose answer is the
// key, and a trial counts as recalled when the model's greedy next-token choice is right at
// every answer token (teacher forcing, so this equals exact-match greedy decoding).
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

#include "framework/data/shards.h"
#include "framework/data/tokenizer.h"

namespace attnlab::eval {

struct NeedleOptions {
  std::vector<int64_t> lengths = {128, 256, 512};  ///< model input lengths L (tokens)
  std::vector<double> depths = {0, 0.25, 0.5, 0.75, 1};  ///< where the needle starts, as a share of the haystack
  int64_t trials = 8;  ///< per (length, depth), each with its own key and stretch of text
  uint64_t seed = 1;
};

/// One trial: L + 1 tokens (inputs are the first L, targets the last L).
struct NeedleTrial {
  std::vector<int64_t> tokens;
  int64_t needle_at = 0;     ///< first token of the needle sentence
  int64_t answer_begin = 0;  ///< first answer token (index into tokens)
  std::string key;
};

/// Throws std::invalid_argument when L + 1 cannot hold the needle, question and answer, or the
/// haystack stream is shorter than the text the trial needs.
NeedleTrial make_needle_trial(const Tokenizer& tok, const TokenStream& haystack, int64_t length, double depth,
                              uint64_t seed);

struct NeedleCell {
  int64_t length = 0;
  double depth = 0;
  double accuracy = 0;        ///< share of trials with every answer token right
  double token_accuracy = 0;  ///< share of answer tokens right
  int64_t trials = 0;
};

/// logits(inputs [N, L] int64) -> [N, L, V]: the model under test.
using LogitsFn = std::function<at::Tensor(const at::Tensor& inputs)>;
std::vector<NeedleCell> run_needle(const LogitsFn& logits, const Tokenizer& tok, const TokenStream& haystack,
                                   const NeedleOptions& o);
/// needle.json: {"task": "needle", "results": [{length, depth, accuracy, token_accuracy, trials}]}.
std::string needle_json(const std::vector<NeedleCell>& cells, const std::string& checkpoint);
/// A depth x length table of accuracies for the terminal.
std::string needle_table(const std::vector<NeedleCell>& cells);

}  // namespace attnlab::eval
