#include "framework/checkpoint/checkpoint_state.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <limits>
#include <set>

#include "framework/util/hash.h"

namespace attnlab {
namespace {

using json = nlohmann::json;

// The checksum covers the compact dump of every other field (nlohmann sorts object keys, so
// the text is canonical).
std::string seal(const json& body) { return hex64(xxh64(body.dump())); }

class FieldReader {
 public:
  FieldReader(const json& obj, std::string file, std::string where)
      : obj_(obj), file_(std::move(file)), where_(std::move(where)) {}

  CheckpointError error(const std::string& field, const std::string& what) const {
    return CheckpointError(fmt::format("{}: {}{}: {}", file_, where_, field, what));
  }
  const json& at(const std::string& field) {
    seen_.insert(field);
    auto it = obj_.find(field);
    if (it == obj_.end()) throw error(field, "missing");
    return *it;
  }
  int64_t integer(const std::string& field, int64_t lo, int64_t hi) {
    const json& v = at(field);
    // Only JSON integers: 1e30 or 5.0 are refused, as is anything past int64.
    if (!v.is_number_integer() ||
        (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)))
      throw error(field, "expected an integer, got " + v.dump());
    const int64_t x = v.get<int64_t>();
    if (x < lo || x > hi) throw error(field, fmt::format("{} is outside [{}, {}]", x, lo, hi));
    return x;
  }
  std::string hex(const std::string& field) {
    const json& v = at(field);
    const bool ok = v.is_string() && v.get<std::string>().size() == 16 &&
                    v.get<std::string>().find_first_not_of("0123456789abcdef") == std::string::npos;
    if (!ok) throw error(field, "expected 16 lowercase hex digits, got " + v.dump());
    return v.get<std::string>();
  }
  std::string text(const std::string& field) {
    const json& v = at(field);
    if (!v.is_string() || v.get<std::string>().size() > 256)
      throw error(field, "expected a short string, got " + v.dump().substr(0, 80));
    return v.get<std::string>();
  }
  /// Every field present must have been read.
  void finish() const {
    for (auto it = obj_.begin(); it != obj_.end(); ++it)
      if (!seen_.count(it.key())) throw error(it.key(), "unknown field");
  }

 private:
  const json& obj_;
  std::string file_, where_;
  std::set<std::string> seen_;
};

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

}  // namespace

std::string encode_state(const CheckpointState& s) {
  json files = json::object();
  for (const auto& [name, d] : s.files) files[name] = {{"bytes", d.bytes}, {"xxh64", d.xxh64}};
  json body = {{"format", kCheckpointFormat},
               {"step", s.step},
               {"optimizer_steps", s.optimizer_steps},
               {"skipped_steps", s.skipped_steps},
               {"data_cursor", s.data_cursor},
               {"train_steps", s.train_steps},
               {"seed", s.seed},
               {"world_size", s.world_size},
               {"config_hash", s.config_hash},
               {"attnlab_version", s.attnlab_version},
               {"files", files}};
  body["checksum"] = seal(body);
  return body.dump(2) + "\n";
}

CheckpointState decode_state(const std::string& text, const std::string& file) {
  json root;
  // state.json is three levels deep ({files: {name: {...}}}); refusing deeper input while
  // parsing keeps the recursive copy and dump below from overflowing the stack.
  auto shallow = [&](int depth, json::parse_event_t, json&) {
    if (depth > 4) throw CheckpointError(file + ": nested deeper than a state.json can be");
    return true;
  };
  try {
    root = json::parse(text, shallow);
  } catch (const json::exception& e) {
    throw CheckpointError(file + ": not valid JSON: " + e.what());
  }
  if (!root.is_object()) throw CheckpointError(file + ": expected a JSON object, got " + root.type_name());
  FieldReader r(root, file, "");
  const std::string checksum = r.hex("checksum");
  json body = root;
  body.erase("checksum");
  if (seal(body) != checksum)
    throw CheckpointError(file + ": checksum mismatch (the file was edited or corrupted)");
  const int64_t format = r.integer("format", 0, kMax);
  if (format != kCheckpointFormat)
    throw CheckpointFormatError(fmt::format("{}: format: {} is not the supported format {} (written by "
                                            "another attnlab version)", file, format, kCheckpointFormat));
  CheckpointState s;
  s.step = r.integer("step", 0, kMax);
  s.optimizer_steps = r.integer("optimizer_steps", 0, s.step);
  s.skipped_steps = r.integer("skipped_steps", 0, s.step);
  if (s.optimizer_steps + s.skipped_steps != s.step)
    throw r.error("optimizer_steps", fmt::format("{} applied + {} skipped != step {}",
                                                 s.optimizer_steps, s.skipped_steps, s.step));
  s.data_cursor = r.integer("data_cursor", 0, kMax);
  s.train_steps = r.integer("train_steps", 1, kMax);
  if (s.step > s.train_steps)
    throw r.error("step", fmt::format("{} is past train_steps {}", s.step, s.train_steps));
  s.seed = r.integer("seed", 0, kMax);
  s.world_size = r.integer("world_size", 1, 1 << 24);
  s.config_hash = r.hex("config_hash");
  s.attnlab_version = r.text("attnlab_version");
  const json& files = r.at("files");
  if (!files.is_object() || files.empty()) throw r.error("files", "expected a non-empty object");
  for (auto it = files.begin(); it != files.end(); ++it) {
    const std::string& name = it.key();
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == ".." ||
        name == "state.json")
      throw r.error("files", "'" + name + "' is not a plain file name of the checkpoint");
    if (!it.value().is_object()) throw r.error("files." + name, "expected an object");
    FieldReader fr(it.value(), file, "files." + name + ".");
    FileDigest d;
    d.bytes = fr.integer("bytes", 0, kMax);
    d.xxh64 = fr.hex("xxh64");
    fr.finish();
    s.files[name] = d;
  }
  r.finish();
  return s;
}

}  // namespace attnlab
