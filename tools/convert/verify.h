// attnlab convert verify: an imported run against logits and a greedy continuation computed by
// the original framework (tools/convert/hf_reference.py writes them with Hugging Face
// transformers; docs/conversion.md, "Fidelity").
#pragma once
#include <string>

namespace attnlab::convert {

struct VerifyResult {
  double logits_rel_rms = 0, logits_max_abs = 0;  ///< over every reference position
  int64_t greedy_matched = 0, greedy_total = 0;    ///< leading generated tokens that agree
  bool passed = false;
};

/// The reference file holds input_ids [N, T] (int64), logits [N, T, V] (fp32), greedy_prompt [P]
/// and greedy_tokens [G] (int64). Logits pass at rel RMS <= tolerance; greedy decoding (the
/// model's cached step path) must reproduce all G tokens.
VerifyResult verify_against_reference(const std::string& run, const std::string& reference, double tolerance);

}  // namespace attnlab::convert
