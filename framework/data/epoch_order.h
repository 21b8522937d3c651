// A deterministic visiting order over n samples: epoch e is a permutation drawn from
// (seed, e), and global sample g is item perm_{g / n}[g % n]. Shared by the shard sampler and
// the synthetic tasks so that both shard ranks and resume the same way.
#pragma once
#include <cstdint>
#include <vector>

namespace attnlab {

class EpochOrder {
 public:
  EpochOrder(int64_t n, uint64_t seed) : n_(n), seed_(seed) {}
  int64_t size() const { return n_; }
  /// The item visited as global sample g (g >= 0).
  int64_t at(int64_t g);

 private:
  int64_t n_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  std::vector<int64_t> perm_;
};

/// splitmix64's finaliser: a well-mixed 64-bit function of x, for per-sample seeds.
uint64_t mix64(uint64_t x);

}  // namespace attnlab
