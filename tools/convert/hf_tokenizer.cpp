#include "tools/convert/hf_tokenizer.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "framework/config/config_error.h"
#include "framework/util/atomic_file.h"

namespace attnlab::convert {
namespace {

using nlohmann::json;

bool is_byte_level(const json& c) {
  // GPT-2's: its regex on, no prefix space (the splitter of framework/data/gpt2_bpe.h).
  return c.is_object() && c.value("type", "") == "ByteLevel" && c.value("use_regex", true) &&
         !c.value("add_prefix_space", false);
}

/// A post-processor that adds nothing: none, ByteLevel (offsets only), or a template of the
/// sequence alone.
bool adds_no_tokens(const json& p) {
  if (p.is_null() || p.value("type", "") == "ByteLevel") return true;
  if (p.value("type", "") != "TemplateProcessing" || !p.contains("single")) return false;
  for (const json& piece : p.at("single"))
    if (!piece.contains("Sequence")) return false;
  return true;
}

}  // namespace

void tokenizer_json_to_gpt2_files(const std::string& json_path, const std::string& out_dir) {
  std::ifstream in(json_path);
  std::stringstream text;
  text << in.rdbuf();
  json j;
  try {
    j = json::parse(text.str());
  } catch (const json::parse_error& e) {
    throw ConfigError({fmt::format("{}: not valid JSON: {}", json_path, e.what())});
  }
  auto refuse = [&](const std::string& field, const std::string& why) {
    throw ConfigError({fmt::format("{}: {}: {}; attnlab reads GPT-2-style byte-level BPE only (docs/conversion.md)",
                                   json_path, field, why)});
  };
  if (!j.is_object() || !j.contains("model") || !j.at("model").is_object()) refuse("model", "missing");
  const json& m = j.at("model");
  if (m.value("type", "") != "BPE") refuse("model.type", "'" + m.value("type", "") + "' is not BPE");
  if (m.value("byte_fallback", false)) refuse("model.byte_fallback", "true (SentencePiece-style BPE)");
  if (!m.value("continuing_subword_prefix", std::string()).empty() || !m.value("end_of_word_suffix", std::string()).empty())
    refuse("model", "subword prefixes or suffixes are not GPT-2's");
  if (j.contains("normalizer") && !j.at("normalizer").is_null()) refuse("normalizer", "present (GPT-2 has none)");
  if (!j.contains("pre_tokenizer") || !is_byte_level(j.at("pre_tokenizer")))
    refuse("pre_tokenizer", "not GPT-2's ByteLevel (with its regex, no prefix space); Llama 3's Split + ByteLevel "
                            "uses another regex");
  if (j.contains("post_processor") && !adds_no_tokens(j.at("post_processor")))
    refuse("post_processor", "adds special tokens around every sequence");
  if (!m.contains("vocab") || !m.at("vocab").is_object()) refuse("model.vocab", "missing");
  json vocab = m.at("vocab");
  if (j.contains("added_tokens"))
    for (const json& t : j.at("added_tokens")) vocab[t.at("content").get<std::string>()] = t.at("id");
  std::string merges = "#version: 0.2\n";
  for (const json& pair : m.value("merges", json::array())) {
    // Older files: "a b"; newer: ["a", "b"].
    if (pair.is_string()) merges += pair.get<std::string>() + "\n";
    else if (pair.is_array() && pair.size() == 2) merges += pair[0].get<std::string>() + " " + pair[1].get<std::string>() + "\n";
    else refuse("model.merges", "an entry is neither \"a b\" nor [a, b]: " + pair.dump());
  }
  std::filesystem::create_directories(out_dir);
  write_file_atomic(out_dir + "/vocab.json", vocab.dump());
  write_file_atomic(out_dir + "/merges.txt", merges);
}

}  // namespace attnlab::convert
