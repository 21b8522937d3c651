// The reader fuzz targets: each names its reader, builds valid seeds in process, optionally
// repairs a mutated input so it reaches deeper checks (a re-framed safetensors header, a
// re-sealed state.json), runs the reader, and says which exception type is the reader's own.
// Anything else escaping (or a sanitizer report) is a bug.
#pragma once
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "tests/fuzz/mutator.h"

namespace attnlab::fuzz {

struct Target {
  std::string name;
  std::vector<std::string> seeds;
  std::vector<std::string> tokens;
  /// Turns a seed into this round's input (mutating it); may repair structure.
  std::function<std::string(const std::string& seed, const std::string& other, Mutator& m)> make_input;
  /// Runs the reader; returns true when the input was accepted. Throws on rejection.
  std::function<bool(const std::string& input, Mutator& m)> run;
  /// True for the reader's own error type (a clean rejection).
  std::function<bool(const std::exception& e)> own_error;
};

Target safetensors_target();
Target shards_target();
Target megatron_target();
Target state_target();
Target yaml_target(const std::string& scratch_dir);

}  // namespace attnlab::fuzz
