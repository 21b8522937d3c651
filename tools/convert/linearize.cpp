#include "tools/convert/linearize.h"

#include <ATen/core/grad_mode.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "framework/checkpoint/checkpoint.h"
#include "framework/checkpoint/tensor_copy.h"
#include "framework/log/console.h"
#include "framework/train/setup.h"
#include "framework/train/trainer.h"
#include "framework/util/atomic_file.h"
#include "framework/util/run_lock.h"
#include "tools/convert/attention_transfer.h"
#include "tools/convert/linearize_config.h"
#include "tools/convert/lora.h"
#include "tools/convert/run_folder.h"
#include "tools/convert/student_model.h"

namespace attnlab::convert {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

void say(const std::string& text) { console_write(stdout, text); }

/// Recipe keys win over the teacher's, mapping by mapping.
void overlay(YAML::Node base, const YAML::Node& over) {
  for (const auto& kv : over) {
    const std::string key = kv.first.Scalar();
    if (kv.second.IsMap() && base[key] && base[key].IsMap()) overlay(base[key], kv.second);
    else base[key] = YAML::Clone(kv.second);
  }
}

struct Plan {
  ConvertConfig convert;
  RunConfig teacher, student;  ///< teacher: its model with the student's data, train and eval
  Checkpoint teacher_checkpoint;
  std::vector<int64_t> converted;
};

Plan make_plan(const std::string& recipe, const std::vector<std::string>& overrides) {
  Plan p;
  YamlSource src = load_recipe(recipe, overrides);
  p.convert = parse_convert_config(src);
  if (src.root["model"])
    throw ConfigError({fmt::format("{}: model: comes from the teacher's config.yaml (convert.teacher); the recipe "
                                   "changes layers through convert.target", recipe)});
  if (!src.root["run"] || !src.root["run"]["name"])
    throw ConfigError({fmt::format("{}: run.name: expected a name for the converted model's run folder", recipe)});
  const std::string teacher_yaml = p.convert.teacher + "/config.yaml";
  const RunConfig teacher = load_run_config(teacher_yaml, {});
  p.teacher_checkpoint = load_checkpoint(p.convert.checkpoint.empty() ? p.convert.teacher : p.convert.checkpoint);
  p.converted = converted_layers(p.convert, teacher.model.layers);

  YAML::Node merged = YAML::LoadFile(teacher_yaml);
  merged.remove("run");
  merged["model"]["pattern"] = student_pattern(teacher.model, p.convert, p.converted);
  YAML::Node own = YAML::Clone(src.root);
  own.remove("convert");
  overlay(merged, own);
  YamlSource student_src{merged, src.origin, src.recipe_path, src.files_loaded};
  p.student = parse_run_config(student_src);
  p.teacher = p.student;
  p.teacher.model = teacher.model;
  if (fs::weakly_canonical(p.student.run_dir()) == fs::weakly_canonical(p.convert.teacher))
    throw ConfigError({fmt::format("{}: run.name: the converted model would overwrite its teacher {}", recipe,
                                   p.convert.teacher)});
  return p;
}

RunConfig stage_config(const RunConfig& student, const std::string& name, int64_t steps, double lr,
                       int64_t warmup, double weight_decay) {
  RunConfig s = student;
  s.run.dir = student.run_dir(), s.run.name = name;
  s.train.steps = steps;
  s.optim.lr = lr, s.optim.warmup_steps = std::min(warmup, steps), s.optim.weight_decay = weight_decay;
  return s;
}

std::string report_path(const RunConfig& stage) { return stage.run_dir() + "/stage-report.json"; }

std::optional<json> read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  return json::parse(in);
}

/// Validation loss of a model whose weights `load` sets, on the stage's validation batches.
double validation_loss(const RunConfig& cfg, const std::function<void(LanguageModel&)>& load) {
  Trainer t(cfg, World{}, TrainerOptions{false, false, true, {}});
  load(t.model());
  t.model()->eval();
  return t.evaluate();
}

/// Runs one stage (or finds it done) and returns its report; nullopt if it was interrupted.
std::optional<json> run_stage(const RunConfig& cfg, std::shared_ptr<TrainingHooks> hooks, bool resume,
                              const std::string& what) {
  if (auto done = read_json(report_path(cfg))) {
    say(fmt::format("{}: done before ({}), skipped\n", what, cfg.run_dir()));
    return done;
  }
  say(fmt::format("{} -> {}\n", what, cfg.run_dir()));
  Trainer t(cfg, World{}, TrainerOptions{resume && has_checkpoints(cfg.run_dir()), true, false, hooks});
  json report;
  if (t.current_step() == 0) {  // where the stage starts, for the report
    report["start"] = {{"val_loss", t.evaluate()}, {"val", t.last_validation()}};
  }
  t.train();
  if (t.current_step() < cfg.train.steps) return std::nullopt;  // interrupted; saved
  const double loss = t.evaluate();
  report["steps"] = cfg.train.steps;
  report["val_loss"] = loss, report["val_ppl"] = std::exp(loss);
  report["val"] = t.last_validation();
  write_file_atomic(report_path(cfg), report.dump(2) + "\n");
  return report;
}

/// The cross entropy needs attention weights on both sides (the teacher's softmax has them).
void check_transfer_terms(LanguageModel& student, const std::vector<int64_t>& converted, const TransferStage& tr,
                          const std::string& recipe) {
  if (tr.xent_factor <= 0) return;
  for (int64_t l : converted) {
    const Block& block = student->layers[static_cast<size_t>(l)];
    if (!block->mixer->attention_takeover().attention_weights)
      throw ConfigError({fmt::format("{}: convert.transfer.xent_factor: {} needs attention weights from the target, "
                                     "and '{}' has none (its output is not a weighted average of values; "
                                     "docs/conversion.md); use mse_factor alone",
                                     recipe, tr.xent_factor, block->mixer_type)});
  }
}

/// train_qk: the converted layers' inherited q_proj and k_proj train in stage 1 as well.
void append_inherited_qk(LanguageModel& student, const std::vector<int64_t>& converted,
                         std::vector<std::string>& trained) {
  for (const auto& [name, p] : named_parameters(student))
    for (int64_t l : converted)
      for (const char* proj : {"q_proj.", "k_proj."})
        if (name.rfind(fmt::format("model.layers.{}.mixer.{}", l, proj), 0) == 0 &&
            std::count(trained.begin(), trained.end(), name) == 0)
          trained.push_back(name);
}

void load_newest(LanguageModel& model, const std::string& run_dir) {
  const Checkpoint ck = load_checkpoint(run_dir);
  load_weights(model, ck.model, ck.dir + "/model.safetensors");
}

}  // namespace

bool is_linearize_recipe(const std::string& recipe, const std::vector<std::string>& overrides) {
  return static_cast<bool>(load_recipe(recipe, overrides).root["convert"]);
}

int linearize(const std::string& recipe, const std::vector<std::string>& overrides, bool resume) {
  Plan p = make_plan(recipe, overrides);
  const std::string run = p.student.run_dir(), summary_file = run + "/conversion.json";
  if (fs::exists(summary_file)) {
    say(fmt::format("{} is already converted ({}); choose another run.name to convert again\n", run, summary_file));
    return 0;
  }
  RunLock lock(run);
  const c10::Device device = resolve_device(p.student.train);
  const std::string teacher_origin = p.teacher_checkpoint.dir + "/model.safetensors";
  auto load_teacher = [&](LanguageModel& m) { load_weights(m, p.teacher_checkpoint.model, teacher_origin); };

  // The student as the teacher hands it over: inherited weights copied, the rest freshly drawn.
  LanguageModel start = build_model(p.student, device);
  LanguageModel teacher = build_model(p.teacher, device);
  load_teacher(teacher);
  const NamedTensors tw = named_parameters(teacher);
  std::vector<std::string> trained = take_teacher_weights(
      start, p.teacher.model, std::map<std::string, at::Tensor>(tw.begin(), tw.end()), p.converted, teacher_origin);
  const TransferStage& tr = p.convert.transfer;
  check_transfer_terms(start, p.converted, tr, recipe);
  if (tr.train_qk) append_inherited_qk(start, p.converted, trained);
  const std::string layers = fmt::format("{}", fmt::join(p.converted, ","));
  say(fmt::format("linearize: teacher {} -> {} on layers [{}] of {}; attention transfer trains {} tensors\n",
                  p.teacher_checkpoint.dir, p.convert.target["type"].Scalar(), layers, p.student.model.layers,
                  trained.size()));

  const double teacher_loss = validation_loss(p.teacher, load_teacher);
  say(fmt::format("teacher: val loss {:.4f} | val ppl {:.3f}\n", teacher_loss, std::exp(teacher_loss)));
  json summary = {{"teacher", {{"checkpoint", p.teacher_checkpoint.dir}, {"val_loss", teacher_loss},
                               {"val_ppl", std::exp(teacher_loss)}}},
                  {"target", p.convert.target["type"].Scalar()},
                  {"converted_layers", p.converted},
                  {"stages", json::array()}};

  const RunConfig s1 = stage_config(p.student, "stage1-transfer", tr.steps, tr.lr, tr.warmup_steps, tr.weight_decay);
  const bool transfer = tr.steps > 0 && !trained.empty();
  if (transfer) {
    auto hooks = std::make_shared<AttentionTransfer>(teacher, start, trained, p.converted, tr.mse_factor,
                                                     tr.xent_factor);
    auto report = run_stage(s1, hooks, resume, "stage 1: attention transfer");
    if (!report) return 0;
    summary["stages"].push_back({{"stage", "transfer"}, {"report", *report}});
  } else {
    say(fmt::format("stage 1: attention transfer skipped ({})\n",
                    trained.empty() ? "the target inherits every parameter" : "convert.transfer.steps: 0"));
  }
  teacher = nullptr;  // stage 2 needs only the student

  const LoraStage& lo = p.convert.lora;
  const RunConfig s2 = stage_config(p.student, "stage2-lora", lo.steps, lo.lr, lo.warmup_steps, lo.weight_decay);
  auto begin_stage2 = [&](LanguageModel& m) {
    if (transfer) return load_newest(m, s1.run_dir());
    at::NoGradGuard no_grad;
    const NamedTensors from = named_parameters(start);
    copy_tensors_exact(named_parameters(m), std::map<std::string, at::Tensor>(from.begin(), from.end()), "the student");
  };
  LanguageModel final_model = build_model(p.student, device);
  if (lo.steps > 0) {
    auto hooks = std::make_shared<LoraFinetune>(lo, begin_stage2, teacher_loss);
    auto report = run_stage(s2, hooks, resume, "stage 2: LoRA fine-tuning");
    if (!report) return 0;
    summary["stages"].push_back({{"stage", "lora"}, {"report", *report}});
    // The stage's last checkpoint holds base weights and adapters: load both, merge.
    LoraFinetune merge(lo, nullptr, teacher_loss);
    merge.prepare(final_model);
    load_newest(final_model, s2.run_dir());
    merge.adapters()->merge();
  } else {
    begin_stage2(final_model);
  }

  // The converted model as a plain run folder: every weight, no adapters, zeroed moments.
  NamedTensors params;
  for (auto& [name, t] : named_parameters(final_model))
    if (name.rfind("model.lora.", 0) != 0) params.emplace_back(name, t.detach().contiguous());
  const RunConfig& out = p.student;
  write_weights_as_run(run, params, out);
  const double final_loss = validation_loss(out, [&](LanguageModel& m) { load_newest(m, run); });
  summary["student"] = {{"val_loss", final_loss}, {"val_ppl", std::exp(final_loss)},
                        {"ppl_ratio", std::exp(final_loss - teacher_loss)}};
  write_file_atomic(summary_file, summary.dump(2) + "\n");

  std::string stages;
  for (const auto& s : summary["stages"])
    stages += fmt::format(" | after {}: ppl {:.3f} ({:.3f}x)", s["stage"].get<std::string>(),
                          s["report"]["val_ppl"].get<double>(),
                          s["report"]["val_ppl"].get<double>() / std::exp(teacher_loss));
  say(fmt::format("linearize: teacher ppl {:.3f}{} -> {} (eval, generate and train --resume accept it)\n",
                  std::exp(teacher_loss), stages, run));
  return 0;
}

}  // namespace attnlab::convert
