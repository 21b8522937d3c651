#include "framework/data/epoch_order.h"

#include <random>
#include <stdexcept>
#include <string>
#include <utility>

namespace attnlab {

int64_t EpochOrder::at(int64_t g) {
  if (g < 0) throw std::out_of_range("data order: negative sample index " + std::to_string(g));
  const int64_t epoch = g / n_;
  if (epoch != epoch_) {
    // Our own Fisher-Yates over mt19937_64 (whose output the standard fixes), not
    // std::shuffle (implementation-defined), so the order is the same on every platform.
    std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch));
    perm_.resize(n_);
    for (int64_t i = 0; i < n_; ++i) perm_[i] = i;
    for (int64_t i = n_ - 1; i > 0; --i) {
      const auto j = static_cast<int64_t>(
          (static_cast<unsigned __int128>(rng()) * static_cast<uint64_t>(i + 1)) >> 64);
      std::swap(perm_[i], perm_[j]);
    }
    epoch_ = epoch;
  }
  return perm_[g % n_];
}

uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace attnlab
