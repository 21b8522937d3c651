#include "framework/data/tokenizer.h"

#include <stdexcept>

#include "framework/data/gpt2_bpe.h"
#include "framework/data/sentencepiece_tokenizer.h"

namespace attnlab {

std::vector<int32_t> ByteTokenizer::encode(const std::string& text) const {
  std::vector<int32_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids)
    if (id >= 0 && id < 256) out.push_back(static_cast<char>(id));  // specials print nothing
  return out;
}

std::unique_ptr<Tokenizer> make_tokenizer(const std::string& name, const std::string& path) {
  if (name == "byte") return std::make_unique<ByteTokenizer>();
  if (name == "gpt2") return std::make_unique<Gpt2Tokenizer>(path);
  if (name == "sentencepiece") {
    if (path.empty())
      throw std::invalid_argument("tokenizer sentencepiece needs data.tokenizer_path (a .model file)");
    return std::make_unique<SentencePieceTokenizer>(path);
  }
  throw std::invalid_argument("unknown tokenizer '" + name + "' (expected byte | gpt2 | sentencepiece)");
}

}  // namespace attnlab
