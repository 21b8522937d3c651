// Linearization (tools/convert; docs/conversion.md, "Linearizing"): which layers convert, how the
// student takes the teacher's weights and options (and what it refuses), attention transfer's
// per-layer error (zero for a student that is exactly the teacher), LoRA merge == unmerged, and a
// whole two-stage conversion of a tiny teacher through the recipe path.
#include <ATen/ops/log.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/randn_like.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "framework/checkpoint/checkpoint.h"
#include "framework/train/setup.h"
#include "framework/train/trainer.h"
#include "tests/common/test_util.h"
#include "tools/convert/attention_transfer.h"
#include "tools/convert/linearize.h"
#include "tools/convert/linearize_config.h"
#include "tools/convert/lora.h"
#include "tools/convert/student_model.h"

namespace attnlab {
namespace {

namespace fs = std::filesystem;
using testing::config_error;
using testing::TinyRun;

convert::ConvertConfig convert_yaml(const std::string& text) {
  return convert::parse_convert_config(load_yaml_text(text, "recipe.yaml"));
}

/// The teacher's config with every layer's mixer replaced as `convert:` says (what linearize does
/// before parsing the student's run config).
RunConfig student_of(const RunConfig& teacher, const convert::ConvertConfig& c, const std::vector<int64_t>& layers) {
  RunConfig s = teacher;
  s.model.pattern.clear();
  for (const auto& entry : convert::student_pattern(teacher.model, c, layers)) {
    YAML::Node opts = YAML::Clone(entry);
    const std::string type = opts["type"].Scalar();
    opts.remove("type");
    s.model.pattern.push_back(mixer_spec(type, YAML::Dump(opts)));
  }
  return s;
}

std::map<std::string, at::Tensor> weights_of(const LanguageModel& m) {
  const NamedTensors t = named_parameters(m);
  return {t.begin(), t.end()};
}

TEST(Linearize, ConvertedLayersFollowListsKeepsAndPatterns) {
  EXPECT_EQ(convert::converted_layers(convert_yaml("convert: {teacher: t, target: {type: gla}}"), 4),
            (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(convert::converted_layers(convert_yaml("convert: {teacher: t, target: {type: gla}, keep: [0]}"), 4),
            (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(convert::converted_layers(convert_yaml("convert: {teacher: t, target: {type: gla}, keep_every: 2}"), 4),
            (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(convert::converted_layers(convert_yaml("convert: {teacher: t, target: {type: gla}, layers: [3, 1]}"), 4),
            (std::vector<int64_t>{1, 3}));
  EXPECT_NE(config_error([] {
              convert::converted_layers(convert_yaml("convert: {teacher: t, target: {type: gla}, layers: [4]}"), 4);
            }).find("convert.layers: layer 4 does not exist"),
            std::string::npos);
  EXPECT_NE(config_error([] { convert_yaml("convert: {teacher: t, target: gla}"); }).find("convert.target"),
            std::string::npos);
  EXPECT_NE(config_error([] { convert_yaml("convert: {teacher: t, target: {type: gla}, lora: {rnak: 4}}"); })
                .find("rnak"),
            std::string::npos);
}

TEST(Linearize, StudentInheritsTeacherOptionsAndWeightsAndTrainsOnlyWhatIsNew) {
  TinyRun r;
  const RunConfig teacher_cfg = r.config({"model.mixer.rope_base=5000"});
  const auto c = convert_yaml("convert: {teacher: t, target: {type: hedgehog, window: 8}}");
  const YAML::Node pattern = convert::student_pattern(teacher_cfg.model, c, {1});
  EXPECT_EQ(pattern[0]["type"].Scalar(), "softmax");
  EXPECT_EQ(pattern[1]["type"].Scalar(), "hedgehog");
  EXPECT_EQ(pattern[1]["heads"].as<int>(), 4);
  EXPECT_EQ(pattern[1]["kv_heads"].as<int>(), 2);
  EXPECT_EQ(pattern[1]["rope_base"].as<double>(), 5000);
  EXPECT_EQ(pattern[1]["rope"].as<bool>(), true);
  EXPECT_EQ(pattern[1]["window"].as<int>(), 8);  // the target's own setting wins

  LanguageModel teacher = build_model(teacher_cfg, c10::kCPU);
  LanguageModel student = build_model(student_of(teacher_cfg, c, {1}), c10::kCPU);
  const auto tw = weights_of(teacher);
  const std::vector<std::string> trained = convert::take_teacher_weights(student, teacher_cfg.model, tw, {1}, "t");
  std::vector<std::string> expected;
  for (const auto& [name, p] : named_parameters(student))
    if (name.rfind("model.layers.1.mixer.", 0) == 0 && name.find("_proj.") == std::string::npos)
      expected.push_back(name);
  EXPECT_EQ(trained, expected);
  EXPECT_EQ(trained.size(), 3u);  // q_map, k_map, window_logit
  for (const auto& [name, p] : named_parameters(student)) {
    const bool is_new = std::count(trained.begin(), trained.end(), name) > 0;
    EXPECT_EQ(p.requires_grad(), is_new) << name;
    if (!is_new) {
      EXPECT_TRUE(at::equal(p, tw.at(name))) << name;
    }
  }
}

TEST(Linearize, RefusesWhatTheTargetCannotReproduce) {
  TinyRun r;
  auto refuse = [&](const std::vector<std::string>& teacher_sets, const std::string& target) {
    const RunConfig t = r.config(teacher_sets);
    const auto c = convert_yaml("convert: {teacher: t, target: " + target + "}");
    return config_error([&] {
      LanguageModel teacher = build_model(t, c10::kCPU);
      LanguageModel student = build_model(student_of(t, c, {0, 1}), c10::kCPU);
      convert::take_teacher_weights(student, t.model, weights_of(teacher), {0, 1}, "teacher.safetensors");
    });
  };
  EXPECT_NE(refuse({"model.mixer.bias=true"}, "{type: hedgehog}").find("softmax option bias: true"),
            std::string::npos);
  EXPECT_NE(refuse({"model.mixer.rope_scaling=linear"}, "{type: hedgehog}").find("rope_scaling: linear"),
            std::string::npos);
  // GLA's default key width is half the teacher's: the shapes name the fix.
  EXPECT_NE(refuse({}, "{type: gla}").find("width options"), std::string::npos);
  EXPECT_EQ(refuse({"model.mixer.rope_base=500000"}, "{type: gla, expand_k: 1, expand_v: 1}"), "no ConfigError");
  EXPECT_NE(refuse({}, "{type: titans}").find("declares no takeover"), std::string::npos);
  // lightning has no GQA: the teacher's kv_heads is named; an MHA teacher converts.
  EXPECT_NE(refuse({}, "{type: lightning}").find("softmax option kv_heads: 2"), std::string::npos);
  EXPECT_EQ(refuse({"model.mixer.kv_heads=0", "model.mixer.rope_base=500000"}, "{type: lightning}"), "no ConfigError");
}

/// A teacher (fp64, random init) and a transfer to `target` on layers 0 and 1, student prepared.
struct TransferCase {
  RunConfig teacher_cfg;
  LanguageModel teacher{nullptr}, student{nullptr};
  std::unique_ptr<convert::AttentionTransfer> transfer;
  TransferCase(const TinyRun& r, const std::string& target, double xent_factor = 0)
      : teacher_cfg(r.config({"train.dtype=fp64"})), teacher(build_model(teacher_cfg, c10::kCPU)) {
    const auto c = convert_yaml("convert: {teacher: t, target: " + target + "}");
    const RunConfig s = student_of(teacher_cfg, c, {0, 1});
    LanguageModel start = build_model(s, c10::kCPU);
    auto trained = convert::take_teacher_weights(start, teacher_cfg.model, weights_of(teacher), {0, 1}, "t");
    transfer = std::make_unique<convert::AttentionTransfer>(teacher, start, trained, std::vector<int64_t>{0, 1},
                                                            1.0, xent_factor);
    student = build_model(s, c10::kCPU);
    transfer->prepare(student);
  }
  std::vector<convert::AttentionTransfer::LayerTerms> terms(const at::Tensor& tokens) {
    return transfer->layer_terms(student, tokens, kernel_context("auto", true));
  }
};

TEST(Linearize, TransferErrorIsZeroForAnExactStudentAndNotOtherwise) {
  TinyRun r;
  const at::Tensor tokens = at::randint(0, 256, {2, 32}, at::kLong);
  auto worst_error = [&](const std::string& target) {
    TransferCase t(r, target);
    double worst = 0;
    for (const auto& e : t.terms(tokens)) {
      EXPECT_FALSE(e.xent.defined());  // no cross-entropy factor, no T×T weights
      worst = std::max(worst, e.mse.item<double>());
    }
    return worst;
  };
  // A window covering the whole sequence makes the LoLCATs hybrid exactly softmax attention.
  EXPECT_LT(worst_error("{type: hedgehog, window: 64}"), 1e-24);
  // (The tiny init makes every output small: the errors below are ~1e-9, the exact one ~1e-30.)
  EXPECT_GT(worst_error("{type: hedgehog, window: 4}"), 1e-14);
  EXPECT_GT(worst_error("{type: hedgehog}"), 1e-14);
}

/// Wo(a v) for a mixer with v_proj, o_proj and attention_weights a (kv heads repeated per group).
at::Tensor output_from_weights(Mixer& m, const at::Tensor& x, const MixerContext& ctx) {
  const at::Tensor a = m.attention_weights(x, ctx);  // [B, H, T, T]
  auto* v_proj = m.named_children()["v_proj"]->as<torch::nn::Linear>();
  auto* o_proj = m.named_children()["o_proj"]->as<torch::nn::Linear>();
  const int64_t B = x.size(0), T = x.size(1), H = a.size(1);
  const int64_t d = o_proj->weight.size(1) / H, Hkv = v_proj->weight.size(0) / d;
  const at::Tensor v = v_proj->forward(x).view({B, T, Hkv, d}).transpose(1, 2).repeat_interleave(H / Hkv, 1);
  return o_proj->forward(at::matmul(a, v).transpose(1, 2).reshape({B, T, H * d}));
}

TEST(Linearize, AttentionWeightsAreTheOnesEachMixerApplies) {
  TinyRun r;
  const at::Tensor tokens = at::randint(0, 256, {2, 21}, at::kLong);
  for (const std::string target : {"{type: hedgehog}", "{type: hedgehog, window: 5}", "{type: swa, window: 6, sinks: 2}"}) {
    TransferCase t(r, target);
    for (const LanguageModel& m : {t.teacher, t.student}) {
      Mixer& mixer = *m->layers[0]->mixer;
      at::NoGradGuard no_grad;
      for (auto& p : mixer.parameters()) p.add_(0.2 * at::randn_like(p));  // away from the tiny init
      const at::Tensor x = at::randn({2, 21, t.teacher_cfg.model.dim}, at::kDouble);
      const MixerContext ctx = kernel_context("reference");
      testing::expect_close(target + " Wo(a v)", output_from_weights(mixer, x, ctx), mixer.forward(x, ctx), 1e-10);
      const at::Tensor a = mixer.attention_weights(x, ctx);
      testing::expect_close(target + " rows", a.sum(-1), at::ones_like(a.sum(-1)), 1e-10);
      EXPECT_EQ(a.triu(1).abs().max().item<double>(), 0.0) << target << ": a future key has weight";
    }
  }
  // Mixers whose output is no weighted average of values have none.
  TransferCase gla(r, "{type: gla, expand_k: 1, expand_v: 1}");
  const at::Tensor x = at::randn({1, 4, gla.teacher_cfg.model.dim}, at::kDouble);
  EXPECT_FALSE(gla.student->layers[0]->mixer->attention_weights(x, kernel_context("auto")).defined());
  EXPECT_FALSE(gla.student->layers[0]->mixer->attention_takeover().attention_weights);
}

TEST(Linearize, WeightCrossEntropyIsTheTeachersEntropyForAnExactStudentAndMoreOtherwise) {
  TinyRun r;
  const at::Tensor tokens = at::randint(0, 256, {2, 32}, at::kLong);
  // The teacher's row entropies, layer by layer, from its own weights on its own layer inputs.
  TransferCase exact(r, "{type: hedgehog, window: 64}", 1.0);
  std::vector<double> entropy;
  {
    at::NoGradGuard no_grad;
    MixerContext ctx = kernel_context("auto");
    ctx.on_mixer = [&](int64_t layer, const at::Tensor& in, const at::Tensor&) {
      const at::Tensor a = exact.teacher->layers[static_cast<size_t>(layer)]->mixer->attention_weights(in, kernel_context("auto"));
      entropy.push_back((-(a * at::log(a.clamp_min(1e-300)))).sum(-1).mean().item<double>());
    };
    exact.teacher->forward(tokens, ctx);
  }
  ASSERT_EQ(entropy.size(), 2u);
  const auto terms = exact.terms(tokens);
  for (size_t l = 0; l < 2; ++l) {
    EXPECT_GT(entropy[l], 0.5);  // a real distribution over up to 32 keys, not a one-hot
    EXPECT_NEAR(terms[l].xent.item<double>(), entropy[l], 1e-10) << "layer " << l;
  }
  // Any other student pays more than the entropy (Gibbs), and the term has a gradient.
  TransferCase linear(r, "{type: hedgehog}", 1.0);
  const auto lt = linear.terms(tokens);
  for (size_t l = 0; l < 2; ++l) EXPECT_GT(lt[l].xent.item<double>(), entropy[l] + 1e-6) << "layer " << l;
  lt[0].xent.backward();
  const at::Tensor g = linear.student->layers[0]->mixer->named_parameters()["q_map.weight"].grad();
  ASSERT_TRUE(g.defined());
  EXPECT_GT(g.abs().max().item<double>(), 0.0);
}

TEST(Linearize, MergedLoraEqualsUnmerged) {
  TinyRun r;
  const RunConfig cfg = r.config({"train.dtype=fp64"});
  LanguageModel model = build_model(cfg, c10::kCPU);
  const at::Tensor tokens = at::randint(0, 256, {2, 24}, at::kLong);
  const at::Tensor base = model->forward(tokens, kernel_context("auto"));
  convert::LoraAdapters lora(model, std::vector<std::string>{"q_proj", "v_proj", "o_proj"}, int64_t{4}, 8.0);
  EXPECT_EQ(lora->size(), 6u);  // three per layer
  {
    at::NoGradGuard no_grad;  // B = 0 at init; give the adapters something to say
    for (auto& p : lora->parameters()) p.copy_(0.3 * at::randn_like(p));
  }
  lora->apply();
  const at::Tensor adapted = model->forward(tokens, kernel_context("auto"));
  EXPECT_GT((adapted - base).abs().max().item<double>(), 1e-3);
  lora->merge();
  const at::Tensor merged = model->forward(tokens, kernel_context("auto"));
  testing::expect_close("merged", adapted, merged, 1e-12);
  lora->apply();  // spent: no second update
  testing::expect_close("after merge", adapted, model->forward(tokens, kernel_context("auto")), 1e-12);

  // Stage 2's hooks freeze every base weight and train only the adapters.
  LanguageModel fresh = build_model(cfg, c10::kCPU);
  convert::LoraStage stage;
  convert::LoraFinetune hooks(stage, nullptr, 0.0);
  hooks.prepare(fresh);
  int64_t trainable = 0;
  for (const auto& [name, p] : named_parameters(fresh)) {
    EXPECT_EQ(p.requires_grad(), name.rfind("model.lora.", 0) == 0) << name;
    trainable += p.requires_grad();
  }
  EXPECT_EQ(trainable, 2 * 4 * 2);  // A and B for q, k, v, o of both layers
}

TEST(Linearize, TwoStagesFromARecipeGiveARunFolderThatEvaluates) {
  TinyRun r;
  {
    Trainer t(r.config(), World{}, TrainerOptions{false, true, true, {}});
    t.train();
  }
  const std::string recipe = r.dir + "/linearize.yaml";
  std::ofstream(recipe) << fmt::format(R"(run: {{name: student, dir: {0}/runs}}
convert:
  teacher: {1}
  keep: [1]
  target: {{type: hedgehog, window: 4}}
  transfer: {{steps: 4, lr: 0.01, warmup_steps: 1}}
  lora: {{steps: 3, lr: 0.001, rank: 2, targets: [q_proj, v_proj]}}
train: {{steps: 1000, batch_size: 2, threads: 1}}
eval: {{every: 0, batches: 2}}
log: {{every: 2}}
)",
                                       r.dir, r.run());
  ASSERT_TRUE(convert::is_linearize_recipe(recipe, {}));
  EXPECT_EQ(convert::linearize(recipe, {}, false), 0);
  const std::string run = r.dir + "/runs/student";
  const auto summary = nlohmann::json::parse(testing::read_file(run + "/conversion.json"));
  EXPECT_EQ(summary["converted_layers"], nlohmann::json::array({0}));
  ASSERT_EQ(summary["stages"].size(), 2u);
  EXPECT_TRUE(summary["stages"][0]["report"]["val"].contains("mse/layer0"));
  EXPECT_TRUE(fs::exists(run + "/stage1-transfer/metrics.jsonl"));
  EXPECT_NE(testing::read_file(run + "/stage1-transfer/metrics.jsonl").find("val/mse/layer0"), std::string::npos);
  // The folder is a plain run: its config builds the student, its checkpoint loads exactly, and
  // its loss is the merged stage-2 model's.
  const RunConfig out = load_run_config(run + "/config.yaml", {});
  EXPECT_EQ(out.model.pattern[0].type, "hedgehog");
  EXPECT_EQ(out.model.pattern[1].type, "softmax");
  Trainer eval(out, World{}, TrainerOptions{false, false, true, {}});
  const Checkpoint ck = load_checkpoint(run);
  load_weights(eval.model(), ck.model, ck.dir);
  eval.model()->eval();
  EXPECT_NEAR(eval.evaluate(), summary["stages"][1]["report"]["val_loss"].get<double>(), 1e-5);
  // Running the recipe again finds it done and writes nothing.
  const std::string before = testing::read_file(run + "/conversion.json");
  EXPECT_EQ(convert::linearize(recipe, {}, false), 0);
  EXPECT_EQ(testing::read_file(run + "/conversion.json"), before);
}

TEST(Linearize, TransferOptionsCrossEntropyAndTrainQkReachTheRun) {
  TinyRun r;
  {
    Trainer t(r.config(), World{}, TrainerOptions{false, true, true, {}});
    t.train();
  }
  auto write_recipe = [&](const std::string& name, const std::string& target, const std::string& transfer) {
    const std::string recipe = fmt::format("{}/{}.yaml", r.dir, name);
    std::ofstream(recipe) << fmt::format(R"(run: {{name: {0}, dir: {1}/runs}}
convert:
  teacher: {2}
  target: {3}
  transfer: {4}
  lora: {{steps: 0}}
train: {{steps: 1000, batch_size: 2, threads: 1}}
eval: {{every: 0, batches: 1}}
log: {{every: 1}}
)",
                                         name, r.dir, r.run(), target, transfer);
    return recipe;
  };
  // gla's output is no weighted average of values: the cross entropy is refused, naming the key.
  const std::string gla = write_recipe("gla", "{type: gla, expand_k: 1, expand_v: 1}", "{steps: 2, xent_factor: 1}");
  EXPECT_NE(config_error([&] { convert::linearize(gla, {}, false); }).find("convert.transfer.xent_factor"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(r.dir + "/runs/gla/stage1-transfer"));

  const std::string hh = write_recipe("hh", "{type: hedgehog}", "{steps: 2, lr: 0.01, xent_factor: 1, train_qk: true}");
  ASSERT_EQ(convert::linearize(hh, {}, false), 0);
  const std::string metrics = testing::read_file(r.dir + "/runs/hh/stage1-transfer/metrics.jsonl");
  EXPECT_NE(metrics.find("xent/layer1"), std::string::npos);
  // train_qk: the converted q and k moved off the teacher's; v did not.
  LanguageModel teacher = build_model(r.config(), c10::kCPU);
  const Checkpoint teacher_ck = load_checkpoint(r.run());
  load_weights(teacher, teacher_ck.model, teacher_ck.dir);
  const RunConfig out = load_run_config(r.dir + "/runs/hh/config.yaml", {});
  LanguageModel student = build_model(out, c10::kCPU);
  const Checkpoint ck = load_checkpoint(r.dir + "/runs/hh");
  load_weights(student, ck.model, ck.dir);
  const auto tw = weights_of(teacher), sw = weights_of(student);
  for (const char* proj : {"q_proj", "k_proj", "v_proj"}) {
    const std::string name = fmt::format("model.layers.0.mixer.{}.weight", proj);
    EXPECT_EQ(at::equal(tw.at(name), sw.at(name)), std::string(proj) == "v_proj") << name;
  }
}

}  // namespace
}  // namespace attnlab
