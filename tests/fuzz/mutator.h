// A small seeded mutator for the reader fuzz targets: byte flips, random bytes, inserted and
// deleted ranges, duplicated ranges, splices with another seed, and "interesting" tokens of
// the format (JSON / YAML punctuation, boundary integers). Deterministic for a given seed, so
// a failure reproduces from the printed input number.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace attnlab::fuzz {

class Mutator {
 public:
  Mutator(uint64_t seed, std::vector<std::string> tokens) : rng_(seed), tokens_(std::move(tokens)) {}
  /// 1..8 random edits of `input`; `other` is a second seed for splicing.
  std::string mutate(std::string input, const std::string& other);
  uint64_t below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
  std::vector<std::string> tokens_;
};

/// Boundary values as decimal text (0, -1, 2^31, 2^63 - 1, 2^64 - 1, 1e309, ...).
std::vector<std::string> boundary_numbers();

}  // namespace attnlab::fuzz
