// Machine-readable rows of `attnlab bench mixer` (`--jsonl FILE`), which `attnlab report
// --bench FILE` plots as tokens/s and memory against the sequence length. Each bench path
// adds one row per (length, implementation) it times; the CLI writes them at the end.
#pragma once
#include <sys/resource.h>

#include <cstdint>
#include <string>
#include <vector>

namespace attnlab::tools {

struct BenchRow {
  std::string mixer, impl;
  int64_t seq = 0, tokens = 0;  ///< T, and the tokens one call processes (B·T)
  double fwd_ms = 0, fwd_bwd_ms = 0;
  /// The process's peak resident memory so far (MB): a high-water mark, so with lengths timed
  /// in increasing order it is the largest footprint up to this row, not this row's own.
  double peak_rss_mb = 0;
};

inline std::vector<BenchRow>& bench_rows() {
  static std::vector<BenchRow> rows;
  return rows;
}

inline double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux reports KB
}

inline void add_bench_row(const std::string& mixer, const std::string& impl, int64_t seq, int64_t tokens,
                          double fwd_ms, double fwd_bwd_ms) {
  bench_rows().push_back({mixer, impl, seq, tokens, fwd_ms, fwd_bwd_ms, peak_rss_mb()});
}

}  // namespace attnlab::tools
