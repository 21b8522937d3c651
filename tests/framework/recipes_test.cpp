// Every shipped recipe and preset loads (what `attnlab config show` does), and every recipe
// small enough for a CPU trains one step, so a renamed option or a broken `extends:` in
// recipes/ or configs/ fails here rather than in a user's terminal.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "framework/train/trainer.h"
#include "tests/common/test_util.h"

namespace fs = std::filesystem;

namespace attnlab {
namespace {

const fs::path kRoot = ATTNLAB_SOURCE_DIR;

std::vector<fs::path> yaml_files(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".yaml") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

/// A recipe with a `convert:` section: a linearization of a teacher run.
bool is_linearization(const fs::path& r) { return static_cast<bool>(load_recipe(r.string()).root["convert"]); }

// A sweep recipe's base point: the recipe without its sweep: section (the points themselves are
// tests/sweep/sweep_test.cpp's).
RunConfig base_config(const fs::path& r, const std::vector<std::string>& sets = {}) {
  YamlSource src = load_recipe(r.string(), sets);
  src.root.remove("sweep");
  return parse_run_config(src);
}

TEST(Recipes, EveryRecipeLoadsAndRoundTrips) {
  const auto recipes = yaml_files(kRoot / "recipes");
  ASSERT_GE(recipes.size(), 5u);
  for (const auto& r : recipes) {
    if (is_linearization(r)) continue;  // next test
    RunConfig c = base_config(r);
    EXPECT_EQ(c.to_yaml(), parse_run_config(load_yaml_text(c.to_yaml(), "resolved")).to_yaml()) << r;
  }
}

TEST(Recipes, EveryLinearizationRecipeNamesATeacherAndAValidTarget) {
  // Their model comes from a trained teacher (docs/conversion.md); tests/convert runs the path.
  int found = 0;
  for (const auto& r : yaml_files(kRoot / "recipes")) {
    if (!is_linearization(r)) continue;
    YamlSource src = load_recipe(r.string());
    const YAML::Node c = src.root["convert"];
    EXPECT_TRUE(c["teacher"] && c["target"]["type"]) << r;
    YAML::Node options = YAML::Clone(c["target"]);
    options.remove("type");
    EXPECT_NO_THROW(mixer_spec(c["target"]["type"].Scalar(), YAML::Dump(options))) << r;
    EXPECT_FALSE(src.root["model"]) << r;
    ++found;
  }
  EXPECT_GE(found, 3);
}

TEST(Recipes, EveryPresetLoads) {
  // A preset is a fragment: mixer presets name what they train; the others are loaded under a
  // mixer preset, as recipes use them.
  const std::string d = testing::temp_dir("presets");
  for (const auto& p : yaml_files(kRoot / "configs")) {
    const bool mixer = p.parent_path().filename() == "mixers";
    const std::string wrapper = d + "/" + p.stem().string() + ".yaml";
    std::ofstream(wrapper) << "extends: [" << p.string()
                           << (mixer ? "" : ", " + (kRoot / "configs/mixers/softmax.yaml").string()) << "]\n";
    EXPECT_NO_THROW(load_run_config(wrapper, {})) << p;
  }
}

TEST(Recipes, EveryCpuRecipeTrainsOneStep) {
  if (!fs::exists("/usr/share/games/fortunes")) GTEST_SKIP() << "fortunes package not installed";
  const std::string d = testing::temp_dir("recipes");
  int trained = 0;
  for (const auto& r : yaml_files(kRoot / "recipes")) {
    if (is_linearization(r)) continue;
    RunConfig c = base_config(r);
    if (c.train.device == "cuda" || c.model.dim > 512) continue;  // GPU-sized (gla-340m)
    c = base_config(r, {"run.dir=" + d + "/runs", "data.dir=" + d + "/data", "train.steps=1",
                                     "eval.batches=1", "train.threads=1"});
    Trainer t(c, World{}, {false, true, true});
    t.train();
    ASSERT_EQ(t.losses().size(), 1u) << r;
    EXPECT_TRUE(std::isfinite(t.losses()[0])) << r;
    EXPECT_TRUE(fs::exists(c.run_dir() + "/checkpoints/step-1")) << r;
    ++trained;
  }
  EXPECT_GE(trained, 5);
}

}  // namespace
}  // namespace attnlab
