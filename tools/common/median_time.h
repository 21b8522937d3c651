// Timing for the benchmark tools (`attnlab bench mixer`, tools/gpu/linear_check): the median
// wall time of `reps` calls after one untimed warm-up call (allocations, thread pools, CUDA
// context). `f` must include any device synchronisation it needs.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

namespace attnlab::tools {

template <class F>
double median_ms(F&& f, int64_t reps) {
  f();
  std::vector<double> t;
  for (int64_t i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace attnlab::tools
