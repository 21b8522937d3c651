#include "framework/data/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include <stdexcept>

namespace attnlab {

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  const auto status = sp_->Load(model_path);
  if (!status.ok())
    throw std::runtime_error("sentencepiece: cannot load '" + model_path + "': " + status.ToString());
  eos_ = sp_->eos_id();
  if (eos_ < 0)
    throw std::runtime_error("sentencepiece: '" + model_path +
                             "' defines no </s> piece (needed as the document separator)");
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int32_t> SentencePieceTokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  if (!status.ok()) throw std::runtime_error("sentencepiece: encode failed: " + status.ToString());
  return {ids.begin(), ids.end()};
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  const auto status = sp_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  if (!status.ok()) throw std::runtime_error("sentencepiece: decode failed: " + status.ToString());
  return text;
}

int64_t SentencePieceTokenizer::vocab_size() const { return sp_->GetPieceSize(); }

}  // namespace attnlab
