// XXH64 (Yann Collet's xxHash, 64-bit variant): a fast non-cryptographic hash, used for the
// per-file checksums of checkpoints (docs/checkpoints.md). It guards against torn writes, bit
// rot and hand edits, not against an adversary. The algorithm and its constants are public;
// tests/framework/checkpoint_test.cpp checks it against vectors from the reference `xxhsum`.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace attnlab {

uint64_t xxh64(const void* data, size_t n, uint64_t seed = 0);
inline uint64_t xxh64(const std::string& bytes) { return xxh64(bytes.data(), bytes.size()); }
/// 16 lowercase hex digits.
std::string hex64(uint64_t v);

}  // namespace attnlab
