// Token shards in llm.c's format (docs/formats.md, "Token shards"): a 1024-byte header of 256
// little-endian int32 (magic, version, token count), then the tokens. magic 20240520 /
// version 1 holds uint16 tokens, 20240801 / version 7 uint32. A .bin with a .idx beside it is a
// Megatron-LM indexed dataset instead (framework/data/megatron.h). Shards are memory-mapped;
// every header field and the file size are checked, and a bad file is an error naming it.
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "framework/data/megatron.h"

namespace attnlab {

constexpr int32_t kShardMagicU16 = 20240520;
constexpr int32_t kShardMagicU32 = 20240801;

/// Any problem with a token shard: unreadable, malformed header, size mismatch.
class ShardError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ShardHeader {
  int64_t tokens = 0;
  bool wide = false;  ///< uint32 tokens (else uint16)
};
/// Validates the llm.c header against the file size; throws ShardError naming `path`.
ShardHeader parse_shard_header(const unsigned char* data, size_t size, const std::string& path);

/// Writes `tokens` atomically (temp file + rename); uint16 when every id < 65536.
void write_shard(const std::string& path, const std::vector<int32_t>& tokens);

class Shard {
 public:
  /// An llm.c shard, or a Megatron dataset when `<path without .bin>.idx` exists.
  explicit Shard(const std::string& path);
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;
  int64_t size() const { return count_; }
  int64_t token(int64_t i) const {
    switch (type_) {
      case TokenType::u16: return reinterpret_cast<const uint16_t*>(data_)[i];
      case TokenType::u32: return reinterpret_cast<const uint32_t*>(data_)[i];
      case TokenType::u8: return data_[i];
      case TokenType::i8: return reinterpret_cast<const int8_t*>(data_)[i];
      case TokenType::i16: return reinterpret_cast<const int16_t*>(data_)[i];
      case TokenType::i32: return reinterpret_cast<const int32_t*>(data_)[i];
      case TokenType::i64: return reinterpret_cast<const int64_t*>(data_)[i];
    }
    return 0;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const unsigned char* data_ = nullptr;
  int64_t count_ = 0;
  TokenType type_ = TokenType::u16;
};

/// All shards of one split (`<dir>/<split>_*.bin`, sorted) seen as one token stream.
class TokenStream {
 public:
  TokenStream(const std::string& dir, const std::string& split);
  int64_t size() const { return total_; }
  /// "<dir>/<split>_*.bin", for messages.
  const std::string& name() const { return name_; }
  /// Copies tokens [start, start + n) into out (int64).
  void read(int64_t start, int64_t n, int64_t* out) const;
  int64_t max_token() const;

 private:
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<int64_t> offsets_;  // first global index of each shard
  int64_t total_ = 0;
  std::string name_;
};

}  // namespace attnlab
