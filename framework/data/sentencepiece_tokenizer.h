// SentencePiece tokenizer (Llama/Mistral-style `.model` files) behind the Tokenizer interface,
// through Debian's libsentencepiece. The document separator is the model's </s> (eos) piece.
#pragma once
#include <memory>

#include "framework/data/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace attnlab {

class SentencePieceTokenizer : public Tokenizer {
 public:
  /// Loads `model_path`; throws std::runtime_error naming the file when it cannot, or when the
  /// model defines no eos piece.
  explicit SentencePieceTokenizer(const std::string& model_path);
  ~SentencePieceTokenizer() override;
  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override;
  int32_t eot_id() const override { return eos_; }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  int32_t eos_ = -1;
};

}  // namespace attnlab
