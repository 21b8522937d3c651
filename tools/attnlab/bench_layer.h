// attnlab bench mixer for mixers without a kernel-level benchmark (titans, grassmann): the
// whole layer, built from the registry at model width D, timed forward and forward+backward
// next to gla and softmax at the same width in the same run.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace attnlab::cli {

struct LayerBenchArgs {
  std::string mixer;
  std::string options = "{}";  ///< YAML mapping of the mixer's options
  std::vector<int64_t> seq;
  int64_t batch = 1, dim = 256, reps = 3;
};

/// True for mixers this benchmark serves.
bool is_layer_bench(const std::string& mixer);
int run_layer_bench(const LayerBenchArgs& a);

}  // namespace attnlab::cli
