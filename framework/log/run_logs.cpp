#include "framework/log/run_logs.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <sstream>

#include "framework/util/atomic_file.h"

namespace fs = std::filesystem;

namespace attnlab {
namespace {

std::string slurp(const fs::path& p) {
  std::string bytes;
  read_file(p.string(), bytes);  // a vanished file reads as empty: nothing to trim
  return bytes;
}

// The step of a metrics row, or -1 for a row that is not a complete JSON object with a step.
int64_t row_step(const std::string& line) {
  try {
    auto j = nlohmann::json::parse(line);
    if (j.is_object() && j.contains("step") && j["step"].is_number_integer()) return j["step"].get<int64_t>();
  } catch (const nlohmann::json::exception&) {
  }
  return -1;
}

bool read_varint(const unsigned char*& p, const unsigned char* end, uint64_t& v) {
  v = 0;
  for (int shift = 0; p < end && shift < 64; shift += 7) {
    const unsigned char b = *p++;
    v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

// Calls on_field(field number, varint value, bytes) for each field of a protobuf message (the
// layout of docs/formats.md); returns false on a malformed message.
template <class F>
bool for_each_field(const std::string& msg, F on_field) {
  auto p = reinterpret_cast<const unsigned char*>(msg.data());
  const unsigned char* end = p + msg.size();
  while (p < end) {
    uint64_t key, v = 0;
    if (!read_varint(p, end, key)) return false;
    const auto* start = p;
    switch (key & 7) {
      case 0: if (!read_varint(p, end, v)) return false; break;
      case 1: if (end - p < 8) return false; p += 8; break;
      case 5: if (end - p < 4) return false; p += 4; break;
      case 2:
        if (!read_varint(p, end, v) || v > static_cast<uint64_t>(end - p)) return false;
        start = p;
        p += v;
        break;
      default: return false;
    }
    on_field(key >> 3, v, std::string(reinterpret_cast<const char*>(start), static_cast<size_t>(p - start)));
  }
  return true;
}

// Event.step (field 2); 0 when absent (the file_version record).
bool event_step(const std::string& payload, int64_t& step) {
  step = 0;
  return for_each_field(payload, [&](uint64_t field, uint64_t v, const std::string&) {
    if (field == 2) step = static_cast<int64_t>(v);
  });
}

// The Event inside a TFRecord: after the u64 length and its CRC, before the payload CRC.
std::string payload_of(const std::string& record) { return record.substr(12, record.size() - 16); }

// Whole TFRecords of an event file; a torn tail is reported through `torn`.
std::vector<std::string> records(const std::string& bytes, bool& torn) {
  std::vector<std::string> out;
  torn = false;
  size_t pos = 0;
  while (pos < bytes.size()) {
    uint64_t len;
    if (bytes.size() - pos < 16) { torn = true; break; }
    std::memcpy(&len, bytes.data() + pos, 8);
    if (len > bytes.size() - pos - 16) { torn = true; break; }
    const size_t total = 12 + static_cast<size_t>(len) + 4;
    out.emplace_back(bytes, pos, total);
    pos += total;
  }
  return out;
}

// Rewrites one event file keeping whole records with step <= `keep_to`; returns records dropped.
int64_t trim_event_file(const fs::path& path, int64_t keep_to) {
  bool torn;
  std::string kept;
  int64_t dropped = 0;
  for (const std::string& rec : records(slurp(path), torn)) {
    int64_t step;
    if (event_step(payload_of(rec), step) && step <= keep_to) kept += rec;
    else ++dropped;
  }
  dropped += torn ? 1 : 0;
  if (dropped > 0) write_file_atomic(path.string(), kept);
  return dropped;
}

}  // namespace

std::vector<std::pair<std::string, int64_t>> read_event_scalars(const std::string& path) {
  std::vector<std::pair<std::string, int64_t>> out;
  bool torn;
  for (const std::string& rec : records(slurp(path), torn)) {
    int64_t step = 0;
    std::string tag;
    for_each_field(payload_of(rec), [&](uint64_t f, uint64_t v, const std::string& bytes) {
      if (f == 2) step = static_cast<int64_t>(v);
      if (f == 5)  // summary { value { tag } }
        for_each_field(bytes, [&](uint64_t f2, uint64_t, const std::string& value) {
          if (f2 == 1)
            for_each_field(value, [&](uint64_t f3, uint64_t, const std::string& t) {
              if (f3 == 1) tag = t;
            });
        });
    });
    if (!tag.empty()) out.emplace_back(tag, step);
  }
  return out;
}

TrimResult trim_run_logs(const std::string& run_dir, int64_t step) {
  TrimResult r;
  if (!fs::is_directory(run_dir)) return r;
  const fs::path metrics = fs::path(run_dir) / "metrics.jsonl";
  if (fs::exists(metrics)) {
    std::istringstream in(slurp(metrics));
    std::string line, kept;
    while (std::getline(in, line)) {
      const int64_t s = row_step(line);
      if (s >= 0 && s <= step) kept += line + "\n";
      else ++r.metrics_rows_dropped;
    }
    if (r.metrics_rows_dropped > 0) write_file_atomic(metrics.string(), kept);
  }
  for (const auto& e : fs::directory_iterator(run_dir))
    if (e.is_regular_file() && e.path().filename().string().rfind("events.out.tfevents.", 0) == 0)
      r.events_dropped += trim_event_file(e.path(), step);
  return r;
}

}  // namespace attnlab
