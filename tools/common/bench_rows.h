// Machine-readable rows of `attnlab bench mixer` (`--jsonl FILE`), which `attnlab report
// --bench FILE` plots as tokens/s and memory against the sequence length. Each bench path
// adds one row per (length, implementation) it times; the CLI writes them at the end.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace attnlab::tools {

struct BenchRow {
  std::string mixer, impl;
  int64_t seq = 0, tokens = 0;  ///< T, and the tokens one call processes (B·T)
  double fwd_ms = 0, fwd_bwd_ms = 0;
  /// The implementation's own peak CPU tensor memory (MB) over its timed calls, above what was
  /// live before them (tools/common/memory_meter.h, MemoryWindow).
  double peak_mb = 0;
};

inline std::vector<BenchRow>& bench_rows() {
  static std::vector<BenchRow> rows;
  return rows;
}

inline void add_bench_row(const std::string& mixer, const std::string& impl, int64_t seq, int64_t tokens,
                          double fwd_ms, double fwd_bwd_ms, double peak_mb) {
  bench_rows().push_back({mixer, impl, seq, tokens, fwd_ms, fwd_bwd_ms, peak_mb});
}

}  // namespace attnlab::tools
