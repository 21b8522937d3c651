// Design rules as tests (design/style.md §12): framework/ never reaches into layers/ or names a
// mixer, no source file past 400 lines, every kernels/<family>/ has a reference.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

namespace fs = std::filesystem;

namespace {

const fs::path kRoot = ATTNLAB_SOURCE_DIR;

std::vector<fs::path> sources(const std::string& folder) {
  std::vector<fs::path> out;
  static const std::regex ext(R"(\.(cpp|h|cu|cuh)$)");
  for (const auto& e : fs::recursive_directory_iterator(kRoot / folder))
    if (e.is_regular_file() && std::regex_search(e.path().string(), ext)) out.push_back(e.path());
  return out;
}

std::string read(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(Design, FrameworkNeverIncludesLayersOrNamesAMixer) {
  static const std::regex include_layers(R"(#include\s+"layers/)");
  static const std::regex mixer_class(R"(SoftmaxAttention|GatedLinearAttention|\bGla\b)");
  for (const auto& f : sources("framework")) {
    const std::string text = read(f);
    EXPECT_FALSE(std::regex_search(text, include_layers)) << f;
    EXPECT_FALSE(std::regex_search(text, mixer_class)) << f;
  }
}

TEST(Design, NoSourceFileExceeds400Lines) {
  for (const char* folder : {"framework", "layers", "kernels", "tools", "tests"})
    for (const auto& f : sources(folder)) {
      const std::string text = read(f);
      EXPECT_LE(std::count(text.begin(), text.end(), '\n'), 400) << f;
    }
}

TEST(Design, EveryKernelFamilyHasAReference) {
  for (const auto& e : fs::directory_iterator(kRoot / "kernels")) {
    if (!e.is_directory() || e.path().filename() == "common" || e.path().filename() == "cuda") continue;
    EXPECT_TRUE(fs::exists(e.path() / "reference.h")) << e.path();
    EXPECT_TRUE(fs::exists(e.path() / "reference.cpp")) << e.path();
  }
}

TEST(Design, NoUmbrellaTorchHeader) {
  // <torch/torch.h> costs seconds per translation unit; narrow includes only.
  for (const char* folder : {"framework", "layers", "kernels", "tools"})
    for (const auto& f : sources(folder))
      EXPECT_EQ(read(f).find("<torch/torch.h>"), std::string::npos) << f;
}

TEST(Design, NoStdFilesystemRemoveAll) {
  // libtorch.so exports a std::filesystem::remove_all that interposes on libstdc++'s and
  // crashes on non-empty folders; use attnlab::remove_tree.
  for (const char* folder : {"framework", "layers", "kernels", "tools", "tests"})
    for (const auto& f : sources(folder)) {
      if (f.filename() == "design_test.cpp") continue;
      EXPECT_EQ(read(f).find("remove_all("), std::string::npos) << f;
    }
}

}  // namespace
