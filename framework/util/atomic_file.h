// Crash-safe file writes: write `<path>.tmp.<pid>`, fsync, rename over `path`, fsync the folder.
// A reader sees the old file or the new one, never a torn one.
#pragma once
#include <string>

namespace attnlab {

void write_file_atomic(const std::string& path, const std::string& bytes);
/// The whole file into `out`; false when it cannot be opened (callers raise their own error).
bool read_file(const std::string& path, std::string& out);
/// fsync a file or directory by path (directories: makes a rename durable).
void fsync_path(const std::string& path);
/// Recursive delete (no error when absent). Not std::filesystem::remove_all: libtorch.so
/// exports its own copy of that symbol, which interposes on libstdc++'s and crashes on
/// non-empty folders (docs/build.md).
void remove_tree(const std::string& path);

}  // namespace attnlab
