#include "framework/data/prepare.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

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
  return fs::is_regular_file(fs::path(dir) / kShardMarker);
}

PrepareStats prepare_shards(const std::vector<std::string>& inputs, const Tokenizer& tok,
                            const std::string& out_dir, double val_fraction, uint64_t seed,
                            int64_t shard_tokens) {
  PrepareStats stats;
  if (fs::exists(out_dir) && !(fs::is_directory(out_dir) && fs::is_empty(out_dir)) &&
      !is_prepared_shard_folder(out_dir))
    throw std::runtime_error(out_dir + ": exists and was not written by `attnlab data prepare` (no " +
                             kShardMarker + " marker); choose a new output folder");
  fs::create_directories(out_dir);
  // The marker goes first: a folder we started is ours to replace even if we die half way.
  write_file_atomic((fs::path(out_dir) / kShardMarker).string(),
                    "token shards written by attnlab data prepare; attnlab may replace this folder\n");
  ShardSink train(out_dir, "train", shard_tokens), val(out_dir, "val", shard_tokens);
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
  return stats;
}

}  // namespace attnlab
