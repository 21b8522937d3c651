// Checks for the worker programs the multi-process tests start (dist_worker, cp_worker): each
// failed check prints one line naming the rank, and the worker exits non-zero if any failed.
#pragma once
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstdio>
#include <string>

namespace attnlab::worker {

inline int failures = 0;

inline void expect(bool ok, const std::string& what, int64_t rank) {
  if (ok) return;
  std::printf("rank %lld: FAILED %s\n", static_cast<long long>(rank), what.c_str());
  ++failures;
}

/// got == want to `tol` relative RMS. `floor` bounds the scale from below: a quantity that is
/// zero up to rounding (a gradient the function does not depend on) is compared absolutely.
inline void expect_close(const std::string& what, const at::Tensor& got, const at::Tensor& want, int64_t rank,
                         double tol = 1e-10, double floor = 1e-300) {
  const double scale = std::max(want.pow(2).mean().sqrt().item<double>(), floor);
  const double e = (got - want).pow(2).mean().sqrt().item<double>() / scale;
  char error[64];
  std::snprintf(error, sizeof(error), "%.3g", e);
  expect(e <= tol, what + ": relative RMS error " + error, rank);
}

}  // namespace attnlab::worker
