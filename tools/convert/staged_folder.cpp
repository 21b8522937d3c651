#include "tools/convert/staged_folder.h"

#include <exception>
#include <filesystem>

#include "framework/util/atomic_file.h"

namespace attnlab::convert {

void write_staged_folder(const std::string& out, const std::string& suffix,
                         const std::function<void(const std::string& staging)>& fill) {
  // remove_tree, not std::filesystem::remove_all: the process binds that to libtorch's exported
  // copy, which crashes on a non-empty folder (docs/build.md).
  const std::string staging = out + suffix;
  remove_tree(staging);
  std::filesystem::create_directories(staging);
  try {
    fill(staging);
    std::filesystem::rename(staging, out);
  } catch (...) {
    try {
      remove_tree(staging);
    } catch (const std::exception&) {  // the original error matters more than the leftover
    }
    throw;
  }
}

}  // namespace attnlab::convert
