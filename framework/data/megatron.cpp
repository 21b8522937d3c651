#include "framework/data/megatron.h"

#include <fmt/format.h>

#include <cstring>

#include "framework/data/shards.h"

namespace attnlab {
namespace {

constexpr char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
constexpr size_t kHeaderBytes = 9 + 8 + 1 + 8 + 8;

template <class T> T read_at(const unsigned char* data, size_t offset) {
  T v;
  std::memcpy(&v, data + offset, sizeof(T));
  return v;
}

}  // namespace

MegatronIndex parse_megatron_index(const unsigned char* data, size_t size, uint64_t bin_bytes,
                                   const std::string& path) {
  auto fail = [&](const std::string& what) { return ShardError(path + ": " + what); };
  if (size < kHeaderBytes)
    throw fail(fmt::format("{} bytes is shorter than the {}-byte Megatron index header", size, kHeaderBytes));
  if (std::memcmp(data, kMagic, sizeof(kMagic)) != 0) throw fail("not a Megatron index (no MMIDIDX magic)");
  if (const auto version = read_at<uint64_t>(data, 9); version != 1)
    throw fail(fmt::format("Megatron index version {}, expected 1", version));
  MegatronIndex ix;
  switch (const uint8_t code = data[17]) {
    case 1: ix.type = TokenType::u8, ix.item_bytes = 1; break;
    case 2: ix.type = TokenType::i8, ix.item_bytes = 1; break;
    case 3: ix.type = TokenType::i16, ix.item_bytes = 2; break;
    case 4: ix.type = TokenType::i32, ix.item_bytes = 4; break;
    case 5: ix.type = TokenType::i64, ix.item_bytes = 8; break;
    case 8: ix.type = TokenType::u16, ix.item_bytes = 2; break;
    case 6:
    case 7: throw fail(fmt::format("dtype code {} ({}) holds no token ids", code, code == 6 ? "float64" : "float32"));
    default: throw fail(fmt::format("unknown dtype code {} (Megatron's are 1-8)", code));
  }
  const uint64_t n = read_at<uint64_t>(data, 18), d = read_at<uint64_t>(data, 26);
  // Sizes first, without overflow: every count must fit in the bytes that are there.
  const uint64_t body = size - kHeaderBytes;
  if (n > body / 12 || d > (body - 12 * n) / 8)
    throw fail(fmt::format("header promises {} sequences and {} documents, more than the {} bytes after it hold",
                           n, d, body));
  const uint64_t rest = body - 12 * n - 8 * d;
  if (rest != 0 && rest != n)  // the optional int8 sequence modes
    throw fail(fmt::format("{} bytes after the document indices, expected 0 or {} (sequence modes)", rest, n));
  ix.sequences = static_cast<int64_t>(n), ix.documents = static_cast<int64_t>(d);
  const size_t lengths = kHeaderBytes, pointers = lengths + 4 * n, documents = pointers + 8 * n;
  uint64_t expect = 0;  // byte offset of the next sequence
  for (uint64_t i = 0; i < n; ++i) {
    const auto len = read_at<int32_t>(data, lengths + 4 * i);
    const auto ptr = read_at<int64_t>(data, pointers + 8 * i);
    if (len < 0) throw fail(fmt::format("sequence {} has length {}", i, len));
    if (ptr < 0 || static_cast<uint64_t>(ptr) != expect)
      throw fail(fmt::format("sequence {} starts at byte {}, expected {}: sequences must lie back to back "
                             "in the .bin, as Megatron's builder writes them", i, ptr, expect));
    expect += static_cast<uint64_t>(len) * static_cast<uint64_t>(ix.item_bytes);
    ix.tokens += len;
  }
  if (expect != bin_bytes)
    throw fail(fmt::format("the index describes {} bytes of tokens but the .bin has {}", expect, bin_bytes));
  int64_t previous = 0;
  for (uint64_t i = 0; i < d; ++i) {
    const auto doc = read_at<int64_t>(data, documents + 8 * i);
    if (doc < previous || static_cast<uint64_t>(doc) > n)
      throw fail(fmt::format("document index {} is {}: they must rise from 0 to at most {} sequences", i, doc, n));
    previous = doc;
  }
  return ix;
}

}  // namespace attnlab
