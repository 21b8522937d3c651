#include "framework/data/gpt2_bpe.h"

#include <nlohmann/json.hpp>

#include <climits>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace attnlab {
namespace {

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) s += static_cast<char>(cp);
  else if (cp < 0x800) s += static_cast<char>(0xC0 | (cp >> 6)), s += static_cast<char>(0x80 | (cp & 0x3F));
  else s += static_cast<char>(0xE0 | (cp >> 12)), s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
       s += static_cast<char>(0x80 | (cp & 0x3F));
  return s;
}

// Length of the UTF-8 sequence starting with byte c (1 for invalid lead bytes).
size_t utf8_len(unsigned char c) {
  if (c >= 0xF0) return 4;
  if (c >= 0xE0) return 3;
  if (c >= 0xC0) return 2;
  return 1;
}

enum class CharClass { letter, digit, space, other };
CharClass classify(const std::string& text, size_t i) {
  unsigned char c = text[i];
  if (c >= 0x80) return CharClass::letter;
  if (std::isalpha(c)) return CharClass::letter;
  if (std::isdigit(c)) return CharClass::digit;
  if (std::isspace(c)) return CharClass::space;
  return CharClass::other;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

Gpt2Tokenizer::Gpt2Tokenizer(const std::string& dir) {
  // The printable byte mapping: 0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF map to themselves, the other
  // 68 bytes to U+0100 upwards in byte order.
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    bool keep = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    byte_to_unicode_[b] = utf8(keep ? b : next++);
    unicode_to_byte_[byte_to_unicode_[b]] = static_cast<unsigned char>(b);
  }
  const std::string vocab_path = dir + "/vocab.json";
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(read_file(vocab_path));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(vocab_path + ": not valid JSON: " + e.what());
  }
  if (!vocab.is_object()) throw std::runtime_error(vocab_path + ": expected an object token -> id");
  id_to_token_.resize(vocab.size());
  for (auto& [tok, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() >= static_cast<int64_t>(vocab.size()))
      throw std::runtime_error(vocab_path + ": id of '" + tok + "' is not in [0, vocab size)");
    token_to_id_[tok] = id.get<int32_t>();
    id_to_token_[id.get<int32_t>()] = tok;
  }
  auto it = token_to_id_.find("<|endoftext|>");
  eot_ = it == token_to_id_.end() ? static_cast<int32_t>(id_to_token_.size()) - 1 : it->second;

  const std::string merges_path = dir + "/merges.txt";
  std::istringstream merges(read_file(merges_path));
  std::string line;
  int rank = 0, lineno = 0;
  while (std::getline(merges, line)) {
    ++lineno;
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    auto sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size())
      throw std::runtime_error(merges_path + ":" + std::to_string(lineno) + ": expected 'a b'");
    merge_rank_[{line.substr(0, sp), line.substr(sp + 1)}] = rank++;
  }
}

std::vector<std::string> Gpt2Tokenizer::split(const std::string& text) {
  std::vector<std::string> out;
  size_t i = 0, n = text.size();
  static const char* contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  while (i < n) {
    bool matched = false;
    for (const char* c : contractions) {
      size_t len = std::strlen(c);
      if (text.compare(i, len, c) == 0) {
        out.push_back(text.substr(i, len)), i += len, matched = true;
        break;
      }
    }
    if (matched) continue;
    size_t start = i;
    size_t j = (text[i] == ' ' && i + 1 < n) ? i + 1 : i;  // optional leading space
    CharClass cls = classify(text, j);
    if (cls == CharClass::space) {
      // \s+(?!\S) | \s+ : a whitespace run, leaving its last char for the next word if one follows.
      size_t e = i;
      while (e < n && classify(text, e) == CharClass::space) ++e;
      if (e < n && e - i > 1) --e;
      out.push_back(text.substr(i, e - i)), i = e;
      continue;
    }
    size_t e = j;
    while (e < n && classify(text, e) == cls) e += cls == CharClass::letter ? utf8_len(text[e]) : 1;
    e = std::min(e, n);
    out.push_back(text.substr(start, e - start)), i = e;
  }
  return out;
}

void Gpt2Tokenizer::bpe(const std::string& piece, std::vector<int32_t>& out) const {
  std::vector<std::string> parts;
  for (unsigned char c : piece) parts.push_back(byte_to_unicode_[c]);
  while (parts.size() > 1) {
    int best = INT_MAX;
    size_t at = 0;
    for (size_t k = 0; k + 1 < parts.size(); ++k) {
      auto it = merge_rank_.find({parts[k], parts[k + 1]});
      if (it != merge_rank_.end() && it->second < best) best = it->second, at = k;
    }
    if (best == INT_MAX) break;
    parts[at] += parts[at + 1];
    parts.erase(parts.begin() + at + 1);
  }
  for (const auto& p : parts) {
    auto it = token_to_id_.find(p);
    if (it == token_to_id_.end())
      throw std::runtime_error("gpt2 tokenizer: piece '" + p + "' missing from vocab.json");
    out.push_back(it->second);
  }
}

std::vector<int32_t> Gpt2Tokenizer::encode(const std::string& text) const {
  std::vector<int32_t> ids;
  for (const auto& piece : split(text)) bpe(piece, ids);
  return ids;
}

std::string Gpt2Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size() || id == eot_) continue;
    const std::string& tok = id_to_token_[id];
    for (size_t i = 0; i < tok.size();) {
      size_t len = utf8_len(tok[i]);
      auto it = unicode_to_byte_.find(tok.substr(i, len));
      if (it != unicode_to_byte_.end()) out.push_back(static_cast<char>(it->second));
      i += len;
    }
  }
  return out;
}

}  // namespace attnlab
