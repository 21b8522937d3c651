// Megatron-LM indexed datasets: files written by numpy (tests/framework/write_megatron.py, an
// independent writer) read token for token, the float dtypes refused by name, and a run
// trained from such a data folder. Needs the test venv's numpy (ATTNLAB_HF_PYTHON, set by
// tools/test.sh); the malformed-header cases are the fuzz target's (tests/fuzz).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "framework/data/shards.h"
#include "framework/train/trainer.h"
#include "tests/common/test_util.h"

namespace attnlab {
namespace {

std::string written_by_numpy() {
  const char* py = std::getenv("ATTNLAB_HF_PYTHON");
  if (!py) return "";
  const std::string dir = testing::temp_dir("megatron");
  const std::string cmd = fmt::format("{} {}/tests/framework/write_megatron.py {}", py, ATTNLAB_SOURCE_DIR, dir);
  return std::system(cmd.c_str()) == 0 ? dir : "";
}

std::vector<int64_t> expected(const std::string& prefix) {
  std::ifstream in(prefix + ".tokens");
  std::vector<int64_t> out;
  for (int64_t t; in >> t;) out.push_back(t);
  return out;
}

TEST(Megatron, ReadsWhatNumpyWroteTokenForToken) {
  const std::string dir = written_by_numpy();
  if (dir.empty()) GTEST_SKIP() << "needs ATTNLAB_HF_PYTHON with numpy (tools/test.sh sets it)";
  for (const char* name : {"train_text_document", "wide", "bytes"}) {
    Shard s(dir + "/" + name + ".bin");
    const std::vector<int64_t> want = expected(dir + "/" + name);
    ASSERT_EQ(s.size(), static_cast<int64_t>(want.size())) << name;
    for (int64_t i = 0; i < s.size(); ++i) ASSERT_EQ(s.token(i), want[i]) << name << " token " << i;
  }
  try {
    Shard f(dir + "/floats.bin");
    ADD_FAILURE() << "a float32 dataset was accepted";
  } catch (const ShardError& e) {
    EXPECT_NE(std::string(e.what()).find("floats.idx: dtype code 7 (float32) holds no token ids"), std::string::npos)
        << e.what();
  }
  // A .bin cut short no longer matches its index.
  std::filesystem::resize_file(dir + "/wide.bin", 8);
  EXPECT_THROW(Shard(dir + "/wide.bin"), ShardError);
}

TEST(Megatron, ARunTrainsFromAMegatronDataFolder) {
  const std::string dir = written_by_numpy();
  if (dir.empty()) GTEST_SKIP() << "needs ATTNLAB_HF_PYTHON with numpy (tools/test.sh sets it)";
  for (const char* other : {"wide", "bytes", "floats"})
    for (const char* ext : {".bin", ".idx"}) std::filesystem::remove(dir + "/" + other + ext);
  testing::TinyRun r;
  Trainer t(r.config({"data.dir=" + dir, "data.prepare_from=''"}), World{}, {false, false, true});
  const double first = t.step().loss;
  EXPECT_TRUE(std::isfinite(first));
  EXPECT_GT(first, 4.0) << "byte-level loss of an untrained model";
  EXPECT_TRUE(std::isfinite(t.evaluate()));
}

}  // namespace
}  // namespace attnlab
