#include "framework/checkpoint/checkpoint.h"

#include <ATen/ops/isfinite.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "framework/util/atomic_file.h"
#include "framework/util/fault.h"
#include "framework/util/hash.h"

namespace fs = std::filesystem;

namespace attnlab {
namespace {

constexpr const char* kModel = "model.safetensors";
constexpr const char* kOptimizer = "optimizer.safetensors";
constexpr uint64_t kMaxStateBytes = 1 << 20;

std::string read_bounded(const fs::path& p, uint64_t max_bytes = UINT64_MAX) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) throw CheckpointError(p.string() + ": missing");
  if (!S_ISREG(st.st_mode)) throw CheckpointError(p.string() + ": not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max_bytes)
    throw CheckpointError(fmt::format("{}: {} bytes, more than the {} expected", p.string(),
                                      st.st_size, max_bytes));
  std::string bytes;
  if (!attnlab::read_file(p.string(), bytes)) throw CheckpointError(p.string() + ": cannot open");
  return bytes;
}

fs::path root_of(const std::string& run_dir) { return fs::path(run_dir) / "checkpoints"; }

// step-<N> folders, newest first.
std::vector<std::pair<int64_t, fs::path>> step_folders(const fs::path& root) {
  std::vector<std::pair<int64_t, fs::path>> out;
  if (!fs::is_directory(root)) return out;
  static const std::regex name("step-([0-9]{1,18})");
  for (const auto& e : fs::directory_iterator(root)) {
    std::smatch m;
    const std::string n = e.path().filename().string();
    if (e.is_directory() && std::regex_match(n, m, name)) out.emplace_back(std::stoll(m[1]), e.path());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

// The file's bytes after checking them against the digest recorded in state.json.
std::string read_verified(const fs::path& dir, const CheckpointState& s, const std::string& name) {
  auto it = s.files.find(name);
  if (it == s.files.end())
    throw CheckpointError((dir / "state.json").string() + ": files: no entry for " + name);
  const fs::path p = dir / name;
  std::string bytes = read_bounded(p, static_cast<uint64_t>(it->second.bytes));  // size first, then read
  if (static_cast<int64_t>(bytes.size()) != it->second.bytes)
    throw CheckpointError(fmt::format("{}: {} bytes, state.json records {} (torn write?)",
                                      p.string(), bytes.size(), it->second.bytes));
  if (hex64(xxh64(bytes)) != it->second.xxh64)
    throw CheckpointError(fmt::format("{}: checksum {} does not match {} in state.json (corrupted)",
                                      p.string(), hex64(xxh64(bytes)), it->second.xxh64));
  return bytes;
}

void require_finite(const SafetensorsFile& f, const std::string& file) {
  for (const auto& [name, t] : f.tensors)
    if (at::isFloatingType(t.scalar_type()) && !at::isfinite(t).all().item<bool>())
      throw CheckpointError(file + ": tensor " + name + " holds non-finite values (NaN or inf)");
}

// Moves `dir` aside under a fresh name with `tag`, so that it vanishes from step-<N> atomically.
fs::path move_aside(const fs::path& dir, const std::string& tag) {
  for (int i = 0;; ++i) {
    fs::path aside = dir.string() + "." + tag + "." + std::to_string(i);
    if (!fs::exists(aside)) {
      fs::rename(dir, aside);
      return aside;
    }
  }
}

void prune(const fs::path& root, int64_t keep, const fs::path& just_saved) {
  auto folders = step_folders(root);
  for (size_t i = static_cast<size_t>(keep); i < folders.size(); ++i) {
    if (folders[i].second == just_saved) continue;
    const fs::path doomed = move_aside(folders[i].second, "del");
    fault_point("save:pruning");
    remove_tree(doomed.string());
    fault_point("save:pruned");
  }
}

// The same test resume applies: a folder that read_checkpoint accepts.
bool verifies(const std::string& dir) {
  try {
    read_checkpoint(dir);
    return true;
  } catch (const CheckpointError&) {
    return false;
  }
}

}  // namespace

std::string save_checkpoint(const std::string& run_dir, const NamedTensors& model,
                            const NamedTensors& optimizer, CheckpointState state, int64_t keep) {
  const fs::path root = root_of(run_dir);
  const std::string name = "step-" + std::to_string(state.step);
  const fs::path tmp = root / (name + ".tmp"), final_dir = root / name;
  fs::create_directories(root);
  if (fs::exists(final_dir)) {
    if (verifies(final_dir.string())) {
      // Same step, same weights (e.g. SIGINT right after a periodic save): keep the complete one.
      write_file_atomic((root / "latest").string(), name + "\n");
      fault_point("save:skip");
      return final_dir.string();
    }
    move_aside(final_dir, "old");  // an unverifiable leftover; removed at the next start
    fault_point("save:replace");
  }
  remove_tree(tmp.string());
  fs::create_directories(tmp);
  fault_point("save:begin");
  struct File {
    const char* name;
    const NamedTensors& tensors;
    std::map<std::string, std::string> metadata;
    const char* written;  ///< the fault point after it
  };
  for (const File& f : {File{kModel, model, {{"format", "pt"}}, "save:model"},
                        File{kOptimizer, optimizer, {}, "save:optimizer"}}) {
    const std::string bytes = encode_safetensors(f.tensors, f.metadata);
    write_file_atomic((tmp / f.name).string(), bytes);
    state.files[f.name] = {static_cast<int64_t>(bytes.size()), hex64(xxh64(bytes))};
    fault_point(f.written);
  }
  write_file_atomic((tmp / "state.json").string(), encode_state(state));
  fault_point("save:state");
  fsync_path(tmp.string());
  fs::rename(tmp, final_dir);
  fsync_path(root.string());
  fault_point("save:renamed");
  write_file_atomic((root / "latest").string(), name + "\n");
  fault_point("save:latest");
  prune(root, keep, final_dir);
  return final_dir.string();
}

Checkpoint read_checkpoint(const std::string& dir_text) {
  const fs::path dir(dir_text);
  if (!fs::is_directory(dir)) throw CheckpointError(dir_text + ": not a checkpoint folder");
  Checkpoint ck;
  ck.dir = dir_text;
  const fs::path state_path = dir / "state.json";
  ck.state = decode_state(read_bounded(state_path, kMaxStateBytes), state_path.string());
  for (const char* required : {kModel, kOptimizer})
    if (!ck.state.files.count(required))
      throw CheckpointError(state_path.string() + ": files: no entry for " + required);
  if (ck.state.files.size() != 2)
    throw CheckpointError(state_path.string() + ": files: expected exactly " + kModel + " and " + kOptimizer);
  try {
    ck.model = decode_safetensors(read_verified(dir, ck.state, kModel), (dir / kModel).string());
    ck.optimizer = decode_safetensors(read_verified(dir, ck.state, kOptimizer), (dir / kOptimizer).string());
  } catch (const SafetensorsError& e) {
    throw CheckpointError(e.what());
  }
  require_finite(ck.model, (dir / kModel).string());
  require_finite(ck.optimizer, (dir / kOptimizer).string());
  return ck;
}

std::vector<std::string> checkpoint_folders(const std::string& run_dir) {
  std::vector<std::string> out;
  for (const auto& [_, p] : step_folders(root_of(run_dir))) out.push_back(p.string());
  return out;
}

bool has_checkpoints(const std::string& run_dir) {
  return fs::exists(root_of(run_dir) / "latest") || !step_folders(root_of(run_dir)).empty();
}

std::optional<std::string> latest_checkpoint(const std::string& run_dir) {
  const fs::path latest = root_of(run_dir) / "latest";
  if (!fs::exists(latest)) return std::nullopt;
  std::string name = read_bounded(latest, 4096);
  name.erase(name.find_last_not_of(" \n\r\t") + 1);
  return (root_of(run_dir) / name).string();
}

NewestCheckpoint newest_checkpoint(const std::string& run_dir) {
  NewestCheckpoint out;
  for (const std::string& dir : checkpoint_folders(run_dir)) {
    try {
      out.checkpoint = read_checkpoint(dir);
      return out;
    } catch (const CheckpointFormatError&) {
      throw;  // a newer attnlab's checkpoint: falling back to an older one would lose its steps
    } catch (const CheckpointError& e) {
      out.rejected.push_back(e.what());
    }
  }
  if (!out.rejected.empty()) {
    std::string why;
    for (const auto& r : out.rejected) why += "\n  " + r;
    throw CheckpointError(run_dir + ": no checkpoint verifies; refusing to start over on top of them:" + why);
  }
  if (fs::exists(root_of(run_dir) / "latest"))
    throw CheckpointError((root_of(run_dir) / "latest").string() +
                          ": names a checkpoint but no step-<N> folder exists");
  return out;
}

Checkpoint load_checkpoint(const std::string& path, std::vector<std::string>* rejected) {
  if (fs::exists(fs::path(path) / "state.json")) return read_checkpoint(path);
  if (!fs::is_directory(path)) throw CheckpointError(path + ": no such run or checkpoint folder");
  auto found = newest_checkpoint(path);
  if (rejected) *rejected = found.rejected;
  if (!found.checkpoint) throw CheckpointError(path + ": neither a checkpoint nor a run with checkpoints");
  return *found.checkpoint;
}

std::vector<std::string> remove_checkpoint_leftovers(const std::string& run_dir) {
  std::vector<std::string> removed;
  const fs::path root = root_of(run_dir);
  if (!fs::is_directory(root)) return removed;
  static const std::regex leftover(R"(step-[0-9]+(\.tmp|\.old\.[0-9]+|\.del\.[0-9]+)|latest\.tmp\.[0-9]+)");
  for (const auto& e : fs::directory_iterator(root))
    if (std::regex_match(e.path().filename().string(), leftover)) removed.push_back(e.path().string());
  for (const auto& p : removed) remove_tree(p);
  return removed;
}

std::string set_aside_checkpoint(const std::string& dir) { return move_aside(dir, "corrupt").string(); }

}  // namespace attnlab
