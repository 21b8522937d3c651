// Tokenizers behind one interface. `byte`: ids 0..255 are the UTF-8 bytes, 256 is
// <|endoftext|> (vocab 257). `gpt2`: byte-level BPE from vocab.json + merges.txt.
// `sentencepiece`: a SentencePiece .model (sentencepiece_tokenizer.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace attnlab {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int32_t> encode(const std::string& text) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;
  /// Document separator appended after every document by `data prepare`.
  virtual int32_t eot_id() const = 0;
};

class ByteTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override { return 257; }
  int32_t eot_id() const override { return 256; }
};

/// `name` is byte | gpt2 | sentencepiece; `path` is the folder holding vocab.json and
/// merges.txt for gpt2, the .model file for sentencepiece.
std::unique_ptr<Tokenizer> make_tokenizer(const std::string& name, const std::string& path);

}  // namespace attnlab
