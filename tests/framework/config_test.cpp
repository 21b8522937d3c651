// Recipes: extends + overrides + typed parsing, and errors that name file, line:col, path.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <sys/stat.h>

#include <filesystem>
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
  // gla's options must not leak into the softmax that replaces it: merged, gate_rank would be
  // an unknown key for softmax and heads would stay 2 instead of softmax's default.
  const std::string d = testing::temp_dir("cfg");
  write(d + "/base.yaml", "model:\n  mixer: {type: gla, heads: 2, gate_rank: 8}\n");
  write(d + "/r.yaml", "extends: base.yaml\nmodel:\n  mixer: {type: softmax}\n");
  RunConfig c = load_run_config(d + "/r.yaml", {});
  ASSERT_EQ(c.model.pattern.size(), 1u);
  EXPECT_EQ(c.model.pattern[0].type, "softmax");
  RunConfig fresh = load_run_config(d + "/base.yaml", {"model.mixer={type: softmax}"});
  EXPECT_EQ(c.to_yaml(), fresh.to_yaml()) << "the swapped mixer is not softmax with its defaults";
  // Same type: options merge as usual.
  write(d + "/same.yaml", "extends: base.yaml\nmodel:\n  mixer: {type: gla, heads: 4}\n");
  EXPECT_NE(load_run_config(d + "/same.yaml", {}).to_yaml().find("gate_rank: 8"), std::string::npos);
}

TEST(Config, ARecipeMustNameWhatItTrains) {
  const std::string d = testing::temp_dir("cfg");
  write(d + "/empty.yaml", "");
  const std::string e = errors_of(d + "/empty.yaml");
  EXPECT_NE(e.find("empty.yaml: model: the recipe names no mixer: set model.mixer (one of: "), std::string::npos) << e;
  EXPECT_NE(errors_of("/dev/null").find("/dev/null: not a regular file"), std::string::npos);
}

TEST(Config, RunNameMustBeAPlainFolderName) {
  const std::string d = testing::temp_dir("cfg");
  write(d + "/r.yaml", "model: {mixer: softmax}\n");
  for (const std::string bad : {"..", ".", "a/b", "''", "/etc"})
    EXPECT_NE(errors_of(d + "/r.yaml", {"run.name=" + bad}).find("must be a plain folder name"), std::string::npos)
        << bad;
  EXPECT_EQ(errors_of(d + "/r.yaml", {"run.name=my-run.2"}), "");
}

TEST(Config, AliasExpansionIsBounded) {
  // Each level doubles: 2^40 nodes when expanded, a few hundred bytes of text.
  std::string text = "a0: &a0 [x, x]\n";
  for (int i = 1; i <= 40; ++i)
    text += fmt::format("a{0}: &a{0} [*a{1}, *a{1}]\n", i, i - 1);
  const std::string d = testing::temp_dir("cfg");
  write(d + "/bomb.yaml", text);
  EXPECT_NE(errors_of(d + "/bomb.yaml").find("expands to more than 100000 YAML nodes"), std::string::npos);
  // Ordinary anchors still work.
  write(d + "/ok.yaml", "model: {mixer: softmax, dim: &w 64}\neval: {batches: *w}\n");
  EXPECT_EQ(load_run_config(d + "/ok.yaml", {}).eval.batches, 64);
}

TEST(Config, DuplicateKeysAreErrorsWithBothLines) {
  const std::string d = testing::temp_dir("cfg");
  write(d + "/r.yaml", "model: {mixer: softmax}\ntrain:\n  steps: 5\n  steps: 50\n");
  const std::string e = errors_of(d + "/r.yaml");
  EXPECT_NE(e.find("r.yaml:4:3: train.steps: duplicate key (first set at line 3)"), std::string::npos) << e;
  EXPECT_NE(errors_of(d + "/r.yaml", {"train={a: 1, a: 2}"}).find("duplicate key"), std::string::npos);
}

TEST(Config, ExtendsRefusesFoldersFifosDevicesBinariesAndHugeNames) {
  const std::string d = testing::temp_dir("cfg");
  ASSERT_EQ(::mkfifo((d + "/pipe.yaml").c_str(), 0644), 0);
  std::ofstream(d + "/bin.yaml", std::ios::binary) << std::string("model:\0\x01\x02", 9);
  std::filesystem::create_directories(d + "/folder.yaml");
  const std::string huge(5000, 'x');
  struct Case { std::string target, expect; };
  for (const Case& c : {Case{"folder.yaml", "not a regular file"}, Case{"pipe.yaml", "not a regular file"},
                        Case{"/dev/zero", "not a regular file"}, Case{"bin.yaml", "holds NUL bytes"},
                        Case{huge, "at most 1024 bytes"}, Case{"[[a], b]", "expected file names"},
                        Case{"{a: 1}", "expected a file name or a list"}}) {
    write(d + "/r.yaml", "extends: " + c.target + "\n");
    const std::string e = errors_of(d + "/r.yaml");
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.target.substr(0, 40) << ": " << e;
    EXPECT_LT(e.size(), 1000u) << "the message repeats a huge name";
  }
  // Fan-out: each file lists the next one 20 times (20^4 loads unbounded).
  for (int i = 0; i < 4; ++i) {
    std::string list;
    for (int k = 0; k < 20; ++k) list += (k ? ", " : "") + std::string("f") + std::to_string(i + 1) + ".yaml";
    write(d + "/f" + std::to_string(i) + ".yaml", "extends: [" + list + "]\n");
  }
  write(d + "/f4.yaml", "train: {steps: 3}\n");
  EXPECT_NE(errors_of(d + "/f0.yaml").find("pulls in more than 256 files"), std::string::npos);
  write(d + "/deep.yaml", "a: " + std::string(100000, '[') + std::string(100000, ']') + "\n");
  EXPECT_NE(errors_of(d + "/deep.yaml").find("deep.yaml:1:"), std::string::npos);
  EXPECT_NE(errors_of(d + "/deep.yaml").find("nested deeper than"), std::string::npos) << errors_of(d + "/deep.yaml");
  write(d + "/big.yaml", "# " + std::string(2 << 20, 'x') + "\n");
  EXPECT_NE(errors_of(d + "/big.yaml").find("a recipe may hold at most"), std::string::npos);
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
  write(d + "/r.yaml", "model: {max_seq_len: 16, mixer: softmax}\ndata: {seq_len: 32}\n");
  EXPECT_NE(errors_of(d + "/r.yaml").find(d + "/r.yaml: config: data.seq_len (32) must not exceed model.max_seq_len (16)"),
            std::string::npos);
}

}  // namespace
}  // namespace attnlab
