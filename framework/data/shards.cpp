#include "framework/data/shards.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "framework/util/atomic_file.h"

namespace fs = std::filesystem;

namespace attnlab {
namespace {

std::string read_index_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ShardError(path + ": cannot open Megatron index");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

void write_shard(const std::string& path, const std::vector<int32_t>& tokens) {
  const bool wide = std::any_of(tokens.begin(), tokens.end(), [](int32_t t) { return t > 65535; });
  int32_t header[256] = {};
  header[0] = wide ? kShardMagicU32 : kShardMagicU16;
  header[1] = wide ? 7 : 1;
  if (tokens.size() >= (1ull << 31)) throw std::runtime_error(path + ": too many tokens for one shard");
  header[2] = static_cast<int32_t>(tokens.size());
  std::string bytes(reinterpret_cast<const char*>(header), sizeof(header));
  if (wide) {
    bytes.append(reinterpret_cast<const char*>(tokens.data()), tokens.size() * 4);
  } else {
    std::vector<uint16_t> narrow(tokens.begin(), tokens.end());
    bytes.append(reinterpret_cast<const char*>(narrow.data()), narrow.size() * 2);
  }
  write_file_atomic(path, bytes);
}

ShardHeader parse_shard_header(const unsigned char* data, size_t size, const std::string& path) {
  auto fail = [&](const std::string& what) { return ShardError(path + ": " + what); };
  if (size < 1024)
    throw fail(std::to_string(size) + " bytes is shorter than the 1024-byte llm.c header");
  int32_t header[3];
  std::memcpy(header, data, sizeof(header));
  ShardHeader h;
  if (header[0] == kShardMagicU16) {
    if (header[1] != 1) throw fail("uint16 shard version " + std::to_string(header[1]) + ", expected 1");
  } else if (header[0] == kShardMagicU32) {
    if (header[1] != 7) throw fail("uint32 shard version " + std::to_string(header[1]) + ", expected 7");
    h.wide = true;
  } else {
    throw fail("bad magic " + std::to_string(header[0]) + " (expected 20240520 or 20240801)");
  }
  h.tokens = header[2];
  const uint64_t expect = 1024 + static_cast<uint64_t>(std::max<int64_t>(h.tokens, 0)) * (h.wide ? 4 : 2);
  if (h.tokens < 0 || expect != size)
    throw fail("header says " + std::to_string(header[2]) + " tokens (" + std::to_string(expect) +
               " bytes) but the file has " + std::to_string(size) + " bytes");
  return h;
}

Shard::Shard(const std::string& path) : path_(path) {
  const std::string idx = fs::path(path).replace_extension(".idx").string();
  const bool megatron = fs::exists(idx);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ShardError(path + ": cannot open token shard");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw ShardError(path + ": not a regular file");
  }
  map_size_ = static_cast<size_t>(st.st_size);
  size_t header_bytes = 1024;
  try {
    if (megatron) {
      const std::string index = read_index_file(idx);
      const MegatronIndex ix = parse_megatron_index(reinterpret_cast<const unsigned char*>(index.data()),
                                                    index.size(), map_size_, idx);
      count_ = ix.tokens, type_ = ix.type, header_bytes = 0;
    } else if (map_size_ < 1024) {  // also keeps mmap of an empty file from failing obscurely
      throw ShardError(path + ": " + std::to_string(map_size_) + " bytes is shorter than the 1024-byte llm.c header");
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (map_size_ == 0) {  // an empty Megatron dataset: nothing to map
    ::close(fd);
    return;
  }
  map_ = ::mmap(nullptr, map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw ShardError(path + ": mmap failed");
  }
  if (!megatron) try {
      const ShardHeader h = parse_shard_header(static_cast<const unsigned char*>(map_), map_size_, path);
      count_ = h.tokens;
      type_ = h.wide ? TokenType::u32 : TokenType::u16;
    } catch (...) {
      ::munmap(map_, map_size_);
      map_ = nullptr;
      throw;
    }
  data_ = static_cast<const unsigned char*>(map_) + header_bytes;
}

Shard::~Shard() {
  if (map_ && map_ != MAP_FAILED) ::munmap(map_, map_size_);
}

TokenStream::TokenStream(const std::string& dir, const std::string& split)
    : name_(dir + "/" + split + "_*.bin") {
  std::vector<std::string> files;
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (name.rfind(split + "_", 0) == 0 && e.path().extension() == ".bin")
        files.push_back(e.path().string());
    }
  if (files.empty()) throw ShardError(dir + ": no " + split + "_*.bin token shards");
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    offsets_.push_back(total_);
    shards_.push_back(std::make_unique<Shard>(f));
    total_ += shards_.back()->size();
  }
}

void TokenStream::read(int64_t start, int64_t n, int64_t* out) const {
  if (start < 0 || start + n > total_) throw std::out_of_range("token range past end of stream");
  size_t s = std::upper_bound(offsets_.begin(), offsets_.end(), start) - offsets_.begin() - 1;
  for (int64_t i = 0; i < n; ++i) {
    int64_t g = start + i;
    while (g >= offsets_[s] + shards_[s]->size()) ++s;
    out[i] = shards_[s]->token(g - offsets_[s]);
  }
}

int64_t TokenStream::max_token() const {
  int64_t m = 0;
  for (const auto& s : shards_)
    for (int64_t i = 0; i < s->size(); ++i) m = std::max(m, s->token(i));
  return m;
}

}  // namespace attnlab
