// `attnlab data prepare`: text files -> documents -> token shards with a train/val split.
// Documents: a file is split on lines holding only "%" (the fortune/strfile format); a file
// without such lines is one document. Each document ends with the tokenizer's EOT id. A
// document goes to val when hash(seed, index) says so, so the split is reproducible.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "framework/data/tokenizer.h"

namespace attnlab {

/// A file that marks a folder as written by prepare_shards, so that attnlab may replace it later
/// (a folder without it is never deleted or overwritten; docs/data.md).
constexpr const char* kShardMarker = ".attnlab-shards";
bool is_prepared_shard_folder(const std::string& dir);

struct PrepareStats {
  int64_t documents = 0, train_tokens = 0, val_tokens = 0, files = 0;
};

/// Throws ConfigError (naming `what`, e.g. "--out" or "config: data.dir") unless `dir` is
/// absent, an empty folder or carries the marker.
void check_replaceable(const std::string& dir, const std::string& what);

/// `inputs`: files or folders (walked recursively; binary files and *.dat indexes skipped).
/// Writes into a sibling temp folder and renames it over `out_dir`, which must pass
/// check_replaceable; a failure leaves `out_dir` as it was.
/// `<parent>/.<name>.lock` beside `out_dir` (the folder itself is replaced by a rename): callers
/// that check for shards and then prepare hold it around both (framework/train/setup.cpp).
std::string prepare_lock_path(const std::string& out_dir);

PrepareStats prepare_shards(const std::vector<std::string>& inputs, const Tokenizer& tok,
                            const std::string& out_dir, double val_fraction, uint64_t seed = 0,
                            int64_t shard_tokens = 100'000'000, const std::string& what = "--out");

}  // namespace attnlab
