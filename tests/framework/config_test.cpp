// Recipes: extends + overrides + typed parsing, and errors that name file, line:col, path.
#include <gtest/gtest.h>

#include <fstream>

#include "framework/config/run_config.h"
#include "tests/common/test_util.h"

namespace attnlab {
namespace {

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string errors_of(const std::string& path, const std::vector<std::string>& sets = {}) {
  try {
    load_run_config(path, sets);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, ExtendsLaterKeysWinAndOverridesApply) {
  const std::string d = testing::temp_dir("cfg");
  write(d + "/base.yaml", "train: {steps: 50, batch_size: 2}\noptim: {lr: 0.5}\n");
  write(d + "/mid.yaml", "extends: base.yaml\ntrain: {steps: 60}\n");
  write(d + "/r.yaml", "extends: [mid.yaml]\noptim: {schedule: wsd}\n");
  RunConfig c = load_run_config(d + "/r.yaml", {"train.batch_size=7", "model.mixer.type=softmax", "model.mixer.heads=2"});
  EXPECT_EQ(c.train.steps, 60);       // mid over base
  EXPECT_EQ(c.train.batch_size, 7);   // --set over files
  EXPECT_DOUBLE_EQ(c.optim.lr, 0.5);  // inherited
  EXPECT_EQ(c.optim.schedule, "wsd");
  EXPECT_EQ(c.model.pattern.at(0).type, "softmax");
  EXPECT_NE(c.to_yaml().find("heads: 2"), std::string::npos);
}

TEST(Config, ExtendsSearchesConfigsFolder) {
  RunConfig c = load_run_config(ATTNLAB_SOURCE_DIR "/recipes/default.yaml", {});
  EXPECT_EQ(c.model.dim, 256);
  EXPECT_EQ(c.data.tokenizer, "byte");
}

TEST(Config, UnknownKeysAreListedTogetherWithLocationAndSuggestion) {
  const std::string d = testing::temp_dir("cfg");
  write(d + "/r.yaml", "train:\n  stepz: 3\n  batch_sise: 2\n");
  const std::string e = errors_of(d + "/r.yaml");
  EXPECT_NE(e.find(d + "/r.yaml:2:10: train.stepz: unknown key (did you mean 'steps'?)"), std::string::npos) << e;
  EXPECT_NE(e.find("train.batch_sise: unknown key (did you mean 'batch_size'?)"), std::string::npos) << e;
}

TEST(Config, WrongTypesAndRangesAreErrors) {
  const std::string d = testing::temp_dir("cfg");
  write(d + "/r.yaml", "train:\n  steps: many\n  clip: -1\noptim:\n  schedule: cosin\n");
  const std::string e = errors_of(d + "/r.yaml");
  EXPECT_NE(e.find(":2:10: train.steps: expected an integer, got 'many'"), std::string::npos) << e;
  EXPECT_NE(e.find("train.clip: expected a number in [0, 1000000], got -1"), std::string::npos) << e;
  EXPECT_NE(e.find("optim.schedule: expected one of cosine | wsd | constant, got 'cosin' (did you mean 'cosine'?)"),
            std::string::npos) << e;
}

TEST(Config, UnknownMixerAndMissingFiles) {
  const std::string d = testing::temp_dir("cfg");
  write(d + "/r.yaml", "model:\n  mixer: {type: sofmax}\n");
  EXPECT_NE(errors_of(d + "/r.yaml").find("model.mixer.type: unknown mixer 'sofmax' (did you mean 'softmax'?)"),
            std::string::npos);
  write(d + "/m.yaml", "extends: nowhere.yaml\n");
  EXPECT_NE(errors_of(d + "/m.yaml").find("extends: cannot find 'nowhere.yaml'"), std::string::npos);
  EXPECT_NE(errors_of(d + "/absent.yaml").find("absent.yaml: file not found"), std::string::npos);
  write(d + "/broken.yaml", "train: {steps: 3\n");
  EXPECT_NE(errors_of(d + "/broken.yaml").find("invalid YAML"), std::string::npos);
}

TEST(Config, OverrideErrorsNameTheOverride) {
  const std::string d = testing::temp_dir("cfg");
  write(d + "/r.yaml", "{}\n");
  EXPECT_NE(errors_of(d + "/r.yaml", {"train.steps=x"}).find("--set train.steps=x: train.steps: expected an integer"),
            std::string::npos);
  EXPECT_NE(errors_of(d + "/r.yaml", {"nonsense"}).find("expected key.path=value"), std::string::npos);
}

TEST(Config, SwappingMixerTypeDropsTheOldOptions) {
  const std::string d = testing::temp_dir("cfg");
  write(d + "/base.yaml", "model:\n  mixer: {type: softmax, heads: 2}\n");
  write(d + "/r.yaml", "extends: base.yaml\nmodel:\n  pattern: [softmax, {type: softmax, heads: 8}]\n");
  RunConfig c = load_run_config(d + "/r.yaml", {});
  ASSERT_EQ(c.model.pattern.size(), 2u);
}

TEST(Config, ResolvedYamlRoundTrips) {
  RunConfig c = load_run_config(ATTNLAB_SOURCE_DIR "/recipes/default.yaml", {"optim.lr=0.00123"});
  const std::string d = testing::temp_dir("cfg");
  write(d + "/resolved.yaml", c.to_yaml());
  RunConfig again = load_run_config(d + "/resolved.yaml", {});
  EXPECT_EQ(c.to_yaml(), again.to_yaml());
  EXPECT_EQ(c.model_hash(), again.model_hash());
  EXPECT_NE(c.model_hash(), load_run_config(d + "/resolved.yaml", {"model.dim=64"}).model_hash());
}

TEST(Config, CrossFieldRules) {
  const std::string d = testing::temp_dir("cfg");
  write(d + "/r.yaml", "model: {max_seq_len: 16}\ndata: {seq_len: 32}\n");
  EXPECT_NE(errors_of(d + "/r.yaml").find("data.seq_len (32) must not exceed model.max_seq_len (16)"),
            std::string::npos);
}

}  // namespace
}  // namespace attnlab
