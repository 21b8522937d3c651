// The Megatron-LM index reader's fuzz target (framework/data/megatron.h). An input is the .bin's
// size (8 bytes) followed by the .idx bytes, so mutations reach both the count checks and the
// agreement with the .bin.
#include <cstring>
#include <fstream>
#include <unistd.h>

#include "framework/data/megatron.h"
#include "framework/data/shards.h"
#include "tests/fuzz/targets.h"

namespace attnlab::fuzz {
namespace {

std::string index_bytes(uint8_t code, int item, const std::vector<int32_t>& lengths, bool modes) {
  std::string out("MMIDIDX\0\0", 9);
  auto put = [&](const auto& v) { out.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
  put(uint64_t{1});
  put(code);
  put(static_cast<uint64_t>(lengths.size()));
  put(static_cast<uint64_t>(lengths.size() + 1));
  for (int32_t l : lengths) put(l);
  int64_t at = 0;
  for (int32_t l : lengths) put(at), at += int64_t{l} * item;
  for (size_t i = 0; i <= lengths.size(); ++i) put(static_cast<int64_t>(i));
  if (modes) out.append(lengths.size(), '\0');
  std::string framed(8, '\0');
  const uint64_t bin = static_cast<uint64_t>(at);
  std::memcpy(framed.data(), &bin, 8);
  return framed + out;
}

}  // namespace

Target megatron_target() {
  Target t;
  t.name = "megatron";
  t.seeds = {index_bytes(8, 2, {3, 5, 1}, false), index_bytes(4, 4, {2, 0, 7}, true), index_bytes(1, 1, {}, false),
             index_bytes(5, 8, {1}, false)};
  t.tokens = {std::string("MMIDIDX\0\0", 9), std::string("\x01\0\0\0\0\0\0\0", 8), std::string("\xff\xff\xff\xff", 4)};
  t.make_input = [](const std::string& seed, const std::string& other, Mutator& m) {
    if (m.below(2)) return m.mutate(seed, other);
    // A header field (dtype, counts) or a length/pointer set to a boundary value.
    std::string s = seed;
    static const uint64_t values[] = {0, 1, 2, 6, 7, 9, 255, 1ull << 32, 1ull << 62, ~0ull};
    static const size_t offsets[] = {8 + 17, 8 + 18, 8 + 26, 8 + 34, 8 + 38, 0};
    const size_t at = offsets[m.below(6)];
    const uint64_t v = values[m.below(10)];
    if (at < s.size()) std::memcpy(s.data() + at, &v, std::min<size_t>(at == 8 + 17 ? 1 : 8, s.size() - at));
    return s;
  };
  t.run = [](const std::string& input, Mutator& m) {
    if (input.size() < 8) throw ShardError("fuzz: shorter than the .bin size field");
    uint64_t bin = 0;
    std::memcpy(&bin, input.data(), 8);
    const auto* idx = reinterpret_cast<const unsigned char*>(input.data()) + 8;
    const MegatronIndex ix = parse_megatron_index(idx, input.size() - 8, bin, "fuzz.idx");
    if (static_cast<uint64_t>(ix.tokens) * static_cast<uint64_t>(ix.item_bytes) != bin)
      throw std::logic_error("accepted index disagrees with the .bin size");
    if (m.below(64) == 0 && bin < (1u << 20)) {  // now and then through the real files (open, mmap, read)
      const std::string base = "/tmp/attnlab-fuzz-megatron-" + std::to_string(::getpid());
      std::ofstream(base + ".idx", std::ios::binary | std::ios::trunc) << input.substr(8);
      std::ofstream(base + ".bin", std::ios::binary | std::ios::trunc) << std::string(bin, '\x01');
      Shard s(base + ".bin");
      volatile int64_t sum = 0;
      for (int64_t i = 0; i < s.size(); ++i) sum = sum + s.token(i);
      ::unlink((base + ".idx").c_str()), ::unlink((base + ".bin").c_str());
      if (s.size() != ix.tokens) throw std::logic_error("Shard and parse_megatron_index disagree");
    }
    return true;
  };
  t.own_error = [](const std::exception& e) { return dynamic_cast<const ShardError*>(&e) != nullptr; };
  return t;
}

}  // namespace attnlab::fuzz
