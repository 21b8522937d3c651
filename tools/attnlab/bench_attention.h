// `bench mixer` for the softmax family (cmd_bench_attention.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace attnlab::cli {

struct AttentionBenchArgs {
  std::string mixer;
  std::vector<int64_t> seq;
  int64_t batch = 1, heads = 4, kv_heads = 0, head_dim = 64, reps = 3;
  double keep = 0.1;  ///< the share the mixer's sparsity keeps: window / T, keys, rows or blocks
};

bool is_attention_bench(const std::string& mixer);
int run_attention_bench(const AttentionBenchArgs& a);

}  // namespace attnlab::cli
