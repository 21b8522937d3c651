// Fuzz targets for the binary readers: safetensors (framework/checkpoint) and llm.c token
// shards (framework/data).
#include <ATen/ops/arange.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>

#include <cstring>
#include <fstream>

#include "framework/checkpoint/safetensors.h"
#include "framework/data/shards.h"
#include "tests/fuzz/targets.h"

namespace attnlab::fuzz {
namespace {

// Splits a safetensors file into (header text, data) and back, so that mutations of the header
// text keep a correct length field and reach the field checks.
std::pair<std::string, std::string> split_safetensors(const std::string& f) {
  uint64_t n = 0;
  if (f.size() < 8) return {"", f};
  std::memcpy(&n, f.data(), 8);
  if (n > f.size() - 8) return {"", f};
  return {f.substr(8, n), f.substr(8 + n)};
}
std::string frame(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

std::string shard_bytes(const std::vector<uint32_t>& tokens, bool wide) {
  int32_t header[256] = {};
  header[0] = wide ? kShardMagicU32 : kShardMagicU16;
  header[1] = wide ? 7 : 1;
  header[2] = static_cast<int32_t>(tokens.size());
  std::string out(reinterpret_cast<const char*>(header), sizeof(header));
  for (uint32_t t : tokens) {
    if (wide) out.append(reinterpret_cast<const char*>(&t), 4);
    else {
      const auto s = static_cast<uint16_t>(t);
      out.append(reinterpret_cast<const char*>(&s), 2);
    }
  }
  return out;
}

}  // namespace

Target safetensors_target() {
  Target t;
  t.name = "safetensors";
  t.seeds = {encode_safetensors({{"w", at::randn({3, 4})}, {"b", at::zeros({4}, at::kHalf)}}, {{"format", "pt"}}),
             encode_safetensors({{"scalar", at::randn({})}, {"empty", at::zeros({0, 5})},
                                 {"ids", at::arange(6, at::kLong).view({2, 3})}}),
             encode_safetensors({{"bf", at::randn({2, 2, 2}).to(at::kBFloat16)}, {"u8", at::zeros({7}, at::kByte)}}),
             encode_safetensors({{"none", at::zeros({0, 3, 4})}, {"f64", at::randn({1, 1, 1, 2}, at::kDouble)}}),
             encode_safetensors({})};
  t.tokens = boundary_numbers();
  for (const char* tok : {"\"", "{", "}", "[", "]", ",", ":", "\"dtype\"", "\"shape\"", "\"data_offsets\"",
                          "\"__metadata__\"", "\"F64\"", "\"BOOL\"", "\"F8_E4M3\"", "null", "true", "\\u0000"})
    t.tokens.emplace_back(tok);
  t.make_input = [](const std::string& seed, const std::string& other, Mutator& m) {
    if (m.below(2)) return m.mutate(seed, other);
    auto [header, data] = split_safetensors(seed);
    header = m.mutate(header, split_safetensors(other).first);
    if (m.below(4) == 0) data = m.mutate(data, "");
    return frame(header, data);
  };
  t.run = [](const std::string& input, Mutator&) {
    SafetensorsFile f = decode_safetensors(input, "fuzz.safetensors");
    // Whatever was accepted must survive our own writer and reader unchanged in count.
    NamedTensors named(f.tensors.begin(), f.tensors.end());
    SafetensorsFile again = decode_safetensors(encode_safetensors(named, f.metadata), "re-encoded");
    if (again.tensors.size() != f.tensors.size()) throw std::logic_error("round trip lost tensors");
    return true;
  };
  t.own_error = [](const std::exception& e) { return dynamic_cast<const SafetensorsError*>(&e) != nullptr; };
  return t;
}

Target shards_target() {
  Target t;
  t.name = "shards";
  t.seeds = {shard_bytes({1, 2, 3, 65535}, false), shard_bytes({70000, 1, 0}, true), shard_bytes({}, false),
             shard_bytes(std::vector<uint32_t>(300, 7), false)};
  t.make_input = [](const std::string& seed, const std::string& other, Mutator& m) {
    if (m.below(2)) return m.mutate(seed, other);
    // Header fields set to boundary values, with the body sized to match or to miss by a little.
    std::string s = seed;
    static const int32_t values[] = {0, 1, 7, -1, 20240520, 20240801, INT32_MAX, INT32_MIN, 3, 300};
    const auto field = static_cast<size_t>(m.below(3));
    std::memcpy(s.data() + 4 * field, &values[m.below(10)], 4);
    if (m.below(2)) s.resize(1024 + static_cast<size_t>(m.below(2048)));
    return s;
  };
  t.run = [](const std::string& input, Mutator& m) {
    const auto* data = reinterpret_cast<const unsigned char*>(input.data());
    const ShardHeader h = parse_shard_header(data, input.size(), "fuzz.bin");
    // Every token the header promises must be inside the buffer.
    volatile uint64_t sum = 0;
    for (int64_t i = 0; i < h.tokens; ++i) {
      uint32_t v = 0;
      std::memcpy(&v, data + 1024 + static_cast<size_t>(i) * (h.wide ? 4 : 2), h.wide ? 4 : 2);
      sum = sum + v;
    }
    if (m.below(64) == 0) {  // now and then through the real file path (open, fstat, mmap)
      const std::string path = "/tmp/attnlab-fuzz-shard-" + std::to_string(::getpid()) + ".bin";
      std::ofstream(path, std::ios::binary | std::ios::trunc) << input;
      Shard s(path);
      if (s.size() != h.tokens) throw std::logic_error("Shard and parse_shard_header disagree");
    }
    return true;
  };
  t.own_error = [](const std::exception& e) { return dynamic_cast<const ShardError*>(&e) != nullptr; };
  return t;
}

}  // namespace attnlab::fuzz
