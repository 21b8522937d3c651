// GPT-2 byte-level BPE (docs/formats.md): bytes are mapped to printable code points,
// text is pre-split by the GPT-2 pattern ('s 't 're 've 'm 'll 'd, ?letters, ?digits,
// ?other, whitespace not followed by non-space), and each piece is merged by rank.
// The splitter is hand-written (std::regex lacks \p{L}); letters/digits are classified for
// ASCII and treated as letters for any non-ASCII code point, which matches GPT-2 on the
// Latin-script text we train on and is documented as a limitation in docs/data.md.
#pragma once
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "framework/data/tokenizer.h"

namespace attnlab {

class Gpt2Tokenizer : public Tokenizer {
 public:
  /// Reads `dir`/vocab.json and `dir`/merges.txt; throws with the file name on bad input.
  explicit Gpt2Tokenizer(const std::string& dir);
  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }
  int32_t eot_id() const override { return eot_; }

  /// The pre-tokenizer on its own (exposed for tests).
  static std::vector<std::string> split(const std::string& text);

 private:
  void bpe(const std::string& piece, std::vector<int32_t>& out) const;
  std::unordered_map<std::string, int32_t> token_to_id_;
  std::vector<std::string> id_to_token_;
  std::map<std::pair<std::string, std::string>, int> merge_rank_;
  std::string byte_to_unicode_[256];
  std::unordered_map<std::string, unsigned char> unicode_to_byte_;
  int32_t eot_ = -1;
};

}  // namespace attnlab
