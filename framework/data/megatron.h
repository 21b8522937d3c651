// Megatron-LM indexed datasets (docs/formats.md, "Megatron indexed datasets"): `prefix.bin`
// holds the token arrays back to back, `prefix.idx` describes them. The index is little-endian,
// unpadded: the 9-byte magic "MMIDIDX\0\0", uint64 version (1), uint8 dtype code, uint64
// sequence count N, uint64 document count D, then int32 lengths[N] (tokens), int64 byte
// pointers[N] into the .bin, int64 document indices[D], and optionally int8 modes[N].
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace attnlab {

/// How a shard stores its token ids.
enum class TokenType { u8, i8, i16, i32, i64, u16, u32 };

struct MegatronIndex {
  TokenType type = TokenType::u16;
  int item_bytes = 2;
  int64_t sequences = 0, documents = 0;
  int64_t tokens = 0;  ///< sum of the sequence lengths = the .bin's size / item_bytes
};

/// Validates an index (every count against the index's size, the sequences back to back from
/// byte 0 and filling the .bin of `bin_bytes` exactly, document indices in order). Throws
/// ShardError naming `path`. Megatron's dtype codes: 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64,
/// 6 float64, 7 float32, 8 uint16; the float codes hold no token ids and are refused.
MegatronIndex parse_megatron_index(const unsigned char* data, size_t size, uint64_t bin_bytes,
                                   const std::string& path);

}  // namespace attnlab
