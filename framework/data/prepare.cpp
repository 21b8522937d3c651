#include "framework/data/prepare.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>
#include <unistd.h>

#include "framework/config/config_error.h"
#include "framework/data/shards.h"
#include "framework/util/atomic_file.h"

namespace fs = std::filesystem;

namespace attnlab {
namespace {

bool looks_like_text(const std::string& bytes) {
  return bytes.find('\0') == std::string::npos;
}

std::vector<std::string> collect_files(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const auto& in : inputs) {
    if (fs::is_regular_file(in)) {
      files.push_back(in);
    } else if (fs::is_directory(in)) {
      for (const auto& e : fs::recursive_directory_iterator(in)) {
        if (!e.is_regular_file() || e.is_symlink()) continue;  // fortunes' *.u8 are symlinks
        if (e.path().extension() == ".dat") continue;         // strfile index, binary
        files.push_back(e.path().string());
      }
    } else {
      throw std::runtime_error(in + ": no such file or folder");
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::string> split_documents(const std::string& text) {
  std::vector<std::string> docs;
  std::istringstream in(text);
  std::string line, cur;
  while (std::getline(in, line)) {
    if (line == "%") {
      if (!cur.empty()) docs.push_back(cur);
      cur.clear();
    } else {
      cur += line + "\n";
    }
  }
  if (!cur.empty()) docs.push_back(cur);
  return docs;
}

uint64_t mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

class ShardSink {
 public:
  ShardSink(std::string dir, std::string split, int64_t cap)
      : dir_(std::move(dir)), split_(std::move(split)), cap_(cap) {}
  void add(const std::vector<int32_t>& ids) {
    buf_.insert(buf_.end(), ids.begin(), ids.end());
    total_ += static_cast<int64_t>(ids.size());
    if (static_cast<int64_t>(buf_.size()) >= cap_) flush();
  }
  void flush() {
    if (buf_.empty()) return;
    char name[64];
    std::snprintf(name, sizeof(name), "/%s_%06d.bin", split_.c_str(), index_++);
    write_shard(dir_ + name, buf_);
    buf_.clear();
  }
  int64_t total() const { return total_; }

 private:
  std::string dir_, split_;
  int64_t cap_, total_ = 0;
  int index_ = 0;
  std::vector<int32_t> buf_;
};

}  // namespace

bool is_prepared_shard_folder(const std::string& dir) {
  std::error_code ec;
  return fs::is_regular_file(fs::path(dir) / kShardMarker, ec);
}

void check_replaceable(const std::string& dir, const std::string& what) {
  std::error_code ec;
  if (!fs::exists(dir, ec) || is_prepared_shard_folder(dir)) return;
  if (fs::is_directory(dir, ec) && fs::is_empty(dir, ec)) return;
  throw ConfigError({fmt::format("{} '{}' exists but was not written by attnlab (no {} marker); "
                                 "refusing to replace it. Choose a new folder, or a folder of "
                                 "llm.c-format shards",
                                 what, dir, kShardMarker)});
}

namespace {
void write_documents(const std::vector<std::string>& inputs, const Tokenizer& tok,
                     const std::string& dir, double val_fraction, uint64_t seed,
                     int64_t shard_tokens, PrepareStats& stats) {
  ShardSink train(dir, "train", shard_tokens), val(dir, "val", shard_tokens);
  for (const auto& file : collect_files(inputs)) {
    std::ifstream f(file, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    const std::string text = ss.str();
    if (!looks_like_text(text)) continue;
    ++stats.files;
    for (const auto& doc : split_documents(text)) {
      std::vector<int32_t> ids = tok.encode(doc);
      ids.push_back(tok.eot_id());
      const double u = static_cast<double>(mix(seed ^ mix(stats.documents)) >> 11) * 0x1.0p-53;
      (u < val_fraction ? val : train).add(ids);
      ++stats.documents;
    }
  }
  if (train.total() == 0) throw std::runtime_error("data prepare: no text found in the inputs");
  if (val.total() == 0 && val_fraction > 0)
    throw std::runtime_error("data prepare: val split is empty; add text or raise val_fraction");
  train.flush();
  val.flush();
  stats.train_tokens = train.total();
  stats.val_tokens = val.total();
}
// "data/x/" and "data/x" are the same folder; the temp folder and the lock are its siblings,
// never inside it.
fs::path output_folder(const std::string& out_dir) {
  fs::path out = fs::path(out_dir).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();
  return out;
}
}  // namespace

std::string prepare_lock_path(const std::string& out_dir) {
  const fs::path out = output_folder(out_dir);
  return (out.parent_path() / fmt::format(".{}.lock", out.filename().string())).string();
}

PrepareStats prepare_shards(const std::vector<std::string>& inputs, const Tokenizer& tok,
                            const std::string& out_dir, double val_fraction, uint64_t seed,
                            int64_t shard_tokens, const std::string& what) {
  const fs::path out = output_folder(out_dir);
  check_replaceable(out.string(), what);
  // pid and a counter: two threads of one process preparing the same folder never share a temp.
  static std::atomic<int64_t> preparations{0};
  const fs::path tmp = out.parent_path() / fmt::format("{}.tmp.{}.{}", out.filename().string(), ::getpid(),
                                                       preparations++);
  remove_tree(tmp.string());
  fs::create_directories(tmp);
  PrepareStats stats;
  try {
    write_documents(inputs, tok, tmp.string(), val_fraction, seed, shard_tokens, stats);
    write_file_atomic((tmp / kShardMarker).string(),
                      "token shards written by attnlab data prepare; attnlab may replace this folder\n");
  } catch (...) {
    remove_tree(tmp.string());
    throw;
  }
  // Only whole outputs become visible, and only over an absent, empty or earlier output (checked
  // again: the folder may have appeared while we were tokenizing). No old shard survives.
  check_replaceable(out.string(), what);
  if (fs::exists(out)) remove_tree(out.string());
  fs::rename(tmp, out);
  fsync_path(out.parent_path().empty() ? "." : out.parent_path().string());
  return stats;
}

}  // namespace attnlab
