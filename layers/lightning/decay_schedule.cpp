#include "layers/lightning/decay_schedule.h"

#include <c10/util/Exception.h>

#include <cmath>

namespace attnlab::layers {

std::vector<double> alibi_slopes(int64_t heads) {
  auto power_of_two = [](int64_t n) {
    std::vector<double> s(n);
    const double start = std::pow(2.0, -8.0 / static_cast<double>(n));
    for (int64_t i = 0; i < n; ++i) s[i] = std::pow(start, static_cast<double>(i + 1));
    return s;
  };
  int64_t p = 1;
  while (p * 2 <= heads) p *= 2;
  std::vector<double> s = power_of_two(p);
  if (p == heads) return s;
  // ALiBi for non-powers of two: the slopes of p, then every other slope of 2p.
  std::vector<double> extra = power_of_two(2 * p);
  for (int64_t i = 0; static_cast<int64_t>(s.size()) < heads; i += 2) s.push_back(extra[i]);
  return s;
}

std::vector<double> lightning_log_decay(const std::string& schedule, int64_t heads, int64_t layer,
                                        int64_t layers) {
  TORCH_CHECK(heads > 0 && layers > 0 && layer >= 0 && layer < layers, "lightning: layer ", layer,
              " of ", layers, " with ", heads, " heads");
  std::vector<double> log_decay(heads);
  if (schedule == "official") {
    const double depth = layers > 1 ? static_cast<double>(layer) / static_cast<double>(layers - 1) : 0.0;
    const std::vector<double> slopes = alibi_slopes(heads);
    for (int64_t h = 0; h < heads; ++h) log_decay[h] = -slopes[h] * (1.0 - depth + 1e-5);
  } else if (schedule == "paper") {
    const double depth = static_cast<double>(layer) / static_cast<double>(layers);
    for (int64_t h = 0; h < heads; ++h)
      log_decay[h] = -(8.0 * static_cast<double>(h) / static_cast<double>(heads)) * (1.0 - depth);
  } else {
    TORCH_CHECK(false, "lightning: decay_schedule must be official | paper, got '", schedule, "'");
  }
  return log_decay;
}

}  // namespace attnlab::layers
