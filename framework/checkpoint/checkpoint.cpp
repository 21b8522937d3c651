#include "framework/checkpoint/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "framework/util/atomic_file.h"

namespace fs = std::filesystem;

namespace attnlab {
namespace {
std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  if (!f) throw std::runtime_error(p.string() + ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void prune(const fs::path& root, int64_t keep) {
  std::vector<std::pair<int64_t, fs::path>> done;
  static const std::regex name("step-([0-9]+)");
  for (const auto& e : fs::directory_iterator(root)) {
    std::smatch m;
    const std::string n = e.path().filename().string();
    if (e.is_directory() && std::regex_match(n, m, name)) done.emplace_back(std::stoll(m[1]), e.path());
  }
  std::sort(done.begin(), done.end());
  for (size_t i = 0; i + keep < done.size(); ++i) remove_tree(done[i].second.string());
}
}  // namespace

std::string save_checkpoint(const std::string& run_dir, int64_t step, const NamedTensors& model,
                            const NamedTensors& optimizer, const nlohmann::json& state,
                            int64_t keep) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  const std::string name = "step-" + std::to_string(step);
  const fs::path tmp = root / (name + ".tmp"), final_dir = root / name;
  remove_tree(tmp.string());
  fs::create_directories(tmp);
  save_safetensors((tmp / "model.safetensors").string(), model, {{"format", "pt"}});
  save_safetensors((tmp / "optimizer.safetensors").string(), optimizer);
  write_file_atomic((tmp / "state.json").string(), state.dump(2) + "\n");
  fsync_path(tmp.string());
  remove_tree(final_dir.string());  // re-saving the same step (e.g. SIGINT right after a save)
  fs::rename(tmp, final_dir);
  fsync_path(root.string());
  write_file_atomic((root / "latest").string(), name + "\n");
  prune(root, keep);
  return final_dir.string();
}

std::optional<std::string> latest_checkpoint(const std::string& run_dir) {
  const fs::path latest = fs::path(run_dir) / "checkpoints" / "latest";
  if (!fs::exists(latest)) return std::nullopt;
  std::string name = read_text(latest);
  name.erase(name.find_last_not_of(" \n\r\t") + 1);
  const fs::path dir = fs::path(run_dir) / "checkpoints" / name;
  if (!fs::is_directory(dir))
    throw std::runtime_error(latest.string() + ": names missing checkpoint " + dir.string());
  return dir.string();
}

Checkpoint load_checkpoint(const std::string& path) {
  std::string dir = path;
  if (!fs::exists(fs::path(path) / "state.json")) {
    auto latest = latest_checkpoint(path);
    if (!latest) throw std::runtime_error(path + ": neither a checkpoint nor a run with checkpoints");
    dir = *latest;
  }
  Checkpoint ck;
  ck.dir = dir;
  ck.model = load_safetensors(dir + "/model.safetensors");
  ck.optimizer = load_safetensors(dir + "/optimizer.safetensors");
  try {
    ck.state = nlohmann::json::parse(read_text(dir + "/state.json"));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(dir + "/state.json: not valid JSON: " + e.what());
  }
  return ck;
}

}  // namespace attnlab
