// Design rules as tests (docs/design.md): framework/ never reaches into layers/ or names a
// registered mixer, nothing cites notes the repository does not ship, no source file past 400
// lines, every kernels/<family>/ has a reference.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "framework/model/mixer.h"

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

// Code with comments removed (string literals kept: a default like "softmax" is the violation).
std::string without_comments(const std::string& text) {
  static const std::regex comments(R"(//[^\n]*|/\*[\s\S]*?\*/)");
  return std::regex_replace(text, comments, " ");
}

TEST(Design, FrameworkNeverIncludesLayersOrNamesAMixer) {
  // The real rule, from the registry itself: no registered mixer name appears in framework/
  // code, as an identifier, a string or a default.
  const std::vector<std::string> names = attnlab::MixerRegistry::instance().names();
  ASSERT_GE(names.size(), 4u) << "the layers library registered too few mixers";
  static const std::regex include_layers(R"(#include\s+"layers/)");
  for (const auto& f : sources("framework")) {
    const std::string code = without_comments(read(f));
    EXPECT_FALSE(std::regex_search(code, include_layers)) << f;
    for (const auto& name : names) {
      const std::regex word("\\b" + name + "\\b", std::regex::icase);
      EXPECT_FALSE(std::regex_search(code, word)) << f << " names the mixer '" << name << "'";
    }
  }
}

TEST(Design, NothingCitesTheUnshippedDesignNotes) {
  // Users of the repository do not have the design notes; comments and docs cite docs/.
  static const std::regex cite(
      R"((\.\./shared|shared/(spec|design)|\bspec/[a-z-]+\.md|(build-and-formats|layers-linear|layers-softmax|distributed|layers-memory-grassmann|style)\.md))");
  std::vector<fs::path> files;
  for (const char* folder : {"framework", "layers", "kernels", "tools", "tests", "docs", "recipes", "configs"})
    for (const auto& e : fs::recursive_directory_iterator(kRoot / folder))
      if (e.is_regular_file() && e.path().filename() != "design_test.cpp") files.push_back(e.path());
  files.push_back(kRoot / "README.md");
  for (const auto& f : files) EXPECT_FALSE(std::regex_search(read(f), cite)) << f;
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
