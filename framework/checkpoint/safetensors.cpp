#include "framework/checkpoint/safetensors.h"

#include <ATen/ops/empty.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "framework/util/atomic_file.h"

namespace attnlab {
namespace {

struct DtypeName {
  at::ScalarType type;
  const char* name;
};
constexpr DtypeName kDtypes[] = {
    {at::kBool, "BOOL"},   {at::kByte, "U8"},     {at::kChar, "I8"},   {at::kShort, "I16"},
    {at::kInt, "I32"},     {at::kLong, "I64"},    {at::kHalf, "F16"},  {at::kBFloat16, "BF16"},
    {at::kFloat, "F32"},   {at::kDouble, "F64"},  {at::kUInt16, "U16"}, {at::kUInt32, "U32"},
    {at::kUInt64, "U64"},  {at::kFloat8_e4m3fn, "F8_E4M3"}, {at::kFloat8_e5m2, "F8_E5M2"},
};

const char* dtype_name(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d.name;
  throw SafetensorsError(std::string("safetensors: cannot store dtype ") + c10::toString(t));
}

constexpr uint64_t kMaxHeader = 100ull << 20;  // the reference parser's cap
constexpr size_t kMaxEntries = 1'000'000;     // tensors per file (real checkpoints: thousands)
constexpr size_t kMaxRank = 64;
constexpr int kMaxDepth = 4;  // header object > tensor entry > shape / offsets list

}  // namespace

std::string encode_safetensors(const NamedTensors& tensors,
                               const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> cpu;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (header.contains(name)) throw SafetensorsError("safetensors: duplicate tensor " + name);
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    const uint64_t bytes = c.numel() * c.element_size();
    header[name] = {{"dtype", dtype_name(c.scalar_type())},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    cpu.push_back(c);
  }
  std::string json = header.dump();
  json.append((8 - (8 + json.size()) % 8) % 8, ' ');
  std::string out(8, '\0');
  const uint64_t n = json.size();
  std::memcpy(out.data(), &n, 8);
  out += json;
  out.reserve(out.size() + offset);
  for (const auto& c : cpu)
    out.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  return out;
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, encode_safetensors(tensors, metadata));
}

SafetensorsFile decode_safetensors(const std::string& bytes, const std::string& name) {
  auto fail = [&](const std::string& what) -> SafetensorsError {
    return SafetensorsError(name + ": malformed safetensors: " + what);
  };
  if (bytes.size() < 8) throw fail("file shorter than the 8-byte header length");
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  if (n > kMaxHeader || n > bytes.size() - 8)
    throw fail("header length " + std::to_string(n) + " exceeds the file or the 100 MB cap");
  // The parser callback rejects duplicate keys (nlohmann keeps the last one silently), nesting
  // deeper than the format uses, and more entries than any real checkpoint has, so that the
  // work per header is bounded before anything is allocated.
  std::vector<std::set<std::string>> keys;  // one set per open object
  size_t entries = 0;
  std::string problem;
  auto guard = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (depth > kMaxDepth) problem = "nested deeper than the format allows";
    else if (event == E::object_start) keys.emplace_back();
    else if (event == E::object_end && !keys.empty()) keys.pop_back();
    else if (event == E::key && !keys.empty() && !keys.back().insert(parsed.get<std::string>()).second)
      problem = "duplicate key '" + parsed.get<std::string>() + "'";
    else if (event == E::key && depth == 1 && ++entries > kMaxEntries)
      problem = "more than " + std::to_string(kMaxEntries) + " tensors";
    if (!problem.empty()) throw fail("header: " + problem);
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + n, guard);
  } catch (const nlohmann::json::exception& e) {
    throw fail(std::string("header is not JSON: ") + e.what());
  }
  if (!header.is_object()) throw fail("header is not a JSON object");
  const uint64_t data_size = bytes.size() - 8 - n;
  const char* data = bytes.data() + 8 + n;
  SafetensorsFile out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto& [key, entry] : header.items()) {
    if (key == "__metadata__") {
      if (!entry.is_object()) throw fail("__metadata__ is not an object");
      for (auto& [mk, mv] : entry.items()) {
        if (!mv.is_string()) throw fail("__metadata__." + mk + " is not a string");
        out.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets"))
      throw fail("tensor '" + key + "' needs dtype, shape and data_offsets");
    const auto& dt = entry["dtype"];
    if (!dt.is_string()) throw fail("tensor '" + key + "': dtype is not a string");
    const DtypeName* found = nullptr;
    for (const auto& d : kDtypes)
      if (dt.get<std::string>() == d.name) found = &d;
    if (!found) throw fail("tensor '" + key + "': unsupported dtype " + dt.get<std::string>());
    std::vector<int64_t> shape;
    if (!entry["shape"].is_array() || entry["shape"].size() > kMaxRank)
      throw fail("tensor '" + key + "': shape is not a list of at most " + std::to_string(kMaxRank) + " sizes");
    // Element count and byte span in overflow-checked arithmetic, before any allocation (a
    // zero anywhere makes the product 0 but every size must still fit an int64).
    // `span` is the product with zeros counted as ones: torch's strides are such products, so
    // [0, 2^62, 4] (no elements, but strides past int64) is refused here too.
    uint64_t numel = 1, nbytes = 0, span = 1, span_bytes = 0;
    bool overflow = false;
    for (const auto& s : entry["shape"]) {
      if (!s.is_number_unsigned() || s.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
        throw fail("tensor '" + key + "': shape entries must be non-negative integers");
      const uint64_t d = s.get<uint64_t>();
      shape.push_back(static_cast<int64_t>(d));
      overflow |= __builtin_mul_overflow(numel, d, &numel);
      overflow |= __builtin_mul_overflow(span, std::max<uint64_t>(d, 1), &span);
    }
    const uint64_t elem = c10::elementSize(found->type);
    overflow |= __builtin_mul_overflow(numel, elem, &nbytes) || nbytes > static_cast<uint64_t>(INT64_MAX);
    overflow |= __builtin_mul_overflow(span, elem, &span_bytes) || span_bytes > static_cast<uint64_t>(INT64_MAX);
    if (overflow) throw fail("tensor '" + key + "': shape " + entry["shape"].dump() + " overflows");
    const auto& off = entry["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      throw fail("tensor '" + key + "': data_offsets must be [begin, end]");
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e || e > data_size)
      throw fail("tensor '" + key + "': offsets [" + std::to_string(b) + ", " + std::to_string(e) +
                 ") outside the " + std::to_string(data_size) + "-byte buffer");
    if (e - b != nbytes)
      throw fail("tensor '" + key + "': " + std::to_string(e - b) + " bytes for " +
                 std::to_string(numel) + " elements of " + std::to_string(elem) + " bytes");
    at::Tensor t;
    try {
      t = at::empty(shape, at::TensorOptions().dtype(found->type));
    } catch (const c10::Error& err) {  // allocation failure or a limit we did not foresee
      throw fail("tensor '" + key + "': cannot allocate shape " + entry["shape"].dump() + ": " +
                 err.what_without_backtrace());
    }
    if (e > b) std::memcpy(t.data_ptr(), data + b, e - b);
    out.tensors[key] = t;
    ranges.emplace_back(b, e);
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t covered = 0;
  for (const auto& [b, e] : ranges) {
    if (b != covered) throw fail("data buffer has a hole or overlap at byte " + std::to_string(b));
    covered = e;
  }
  if (covered != data_size)
    throw fail(std::to_string(data_size - covered) + " trailing bytes not covered by any tensor");
  return out;
}

SafetensorsFile load_safetensors(const std::string& path) {
  std::string bytes;
  if (!read_file(path, bytes)) throw SafetensorsError(path + ": cannot open");
  return decode_safetensors(bytes, path);
}

}  // namespace attnlab
