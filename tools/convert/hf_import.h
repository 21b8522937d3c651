// attnlab convert import: a Hugging Face model folder -> an attnlab run folder (config.yaml, the
// tokenizer, and a step-0 checkpoint with zeroed optimizer moments) that train --resume, eval
// and generate accept (docs/conversion.md, "Import").
#pragma once
#include <string>
#include <vector>

namespace attnlab::convert {

struct ImportOptions {
  std::string hf_dir;        ///< config.json, model.safetensors[.index.json], tokenizer files
  std::string out_dir;       ///< the run folder to create; must not exist
  std::string prepare_from = "/usr/share/games/fortunes";  ///< data.prepare_from: the text training tokenizes
  std::vector<std::string> overrides;  ///< --set a.b=value on the generated recipe (e.g. optim.lr)
  int64_t seq_len = 0;       ///< data.seq_len; 0 = min(1024, the model's context)
  /// auto: the folder's own tokenizer (GPT-2 BPE or SentencePiece); byte: attnlab's byte
  /// tokenizer instead (for a folder without one; ids then mean bytes, not the model's tokens).
  std::string tokenizer = "auto";
};

struct ImportResult {
  std::string run_dir, family, tokenizer;
  int64_t parameters = 0;
};

ImportResult import_hf(const ImportOptions& o);

}  // namespace attnlab::convert
