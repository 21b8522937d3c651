#include "framework/config/run_config.h"

#include <fmt/format.h>

#include <cmath>

namespace attnlab {
namespace {

// `key` is the field of model.* the spec came from (mixer | pattern), for error locations.
MixerSpec parse_mixer_spec(ParseVisitor& parent, YAML::Node node, const std::string& key,
                           const std::string& path) {
  const auto& reg = MixerRegistry::instance();
  MixerSpec spec;
  const bool is_map = node.IsMap() && node["type"] && node["type"].IsScalar();
  if (node.IsScalar()) {
    spec.type = node.Scalar();
  } else if (is_map) {
    spec.type = node["type"].Scalar();
  } else {
    parent.error(key, path + ": expected a mixer name or a mapping with `type:`");
    return spec;
  }
  const MixerEntry* entry = reg.find(spec.type);
  if (!entry) {
    if (is_map) parent.child_visitor_of(node, path).error("type", reg.unknown_message("mixer", spec.type));
    else parent.error(key, reg.unknown_message("mixer", spec.type));
    return spec;
  }
  ParseVisitor v = parent.child_visitor_of(is_map ? node : YAML::Node(), path);
  if (is_map) v.take("type");
  spec.options = entry->parse(v);
  v.finish();
  return spec;
}

}  // namespace

MixerSpec default_mixer_spec(const std::string& type) { return mixer_spec(type, "{}"); }

MixerSpec mixer_spec(const std::string& type, const std::string& options) {
  const MixerEntry* entry = MixerRegistry::instance().find(type);
  if (!entry) throw std::invalid_argument(MixerRegistry::instance().unknown_message("mixer", type));
  std::vector<std::string> errors;
  YamlSource src = load_yaml_text(options, "<options of " + type + ">");
  ParseVisitor v(src, src.root, "model.mixer", errors);
  MixerSpec spec{type, entry->parse(v)};
  if (!errors.empty()) throw ConfigError(errors);
  return spec;
}

namespace {

void parse_model(ParseVisitor& v, ModelConfig& m) {
  m.visit(v);
  YAML::Node mixer = v.take("mixer");
  YAML::Node pattern = v.take("pattern");
  const std::string base = v.path();
  if (pattern && !pattern.IsNull()) {
    if (!pattern.IsSequence() || pattern.size() == 0) {
      v.error("pattern", "expected a non-empty list of mixers");
    } else {
      for (size_t i = 0; i < pattern.size(); ++i)
        m.pattern.push_back(parse_mixer_spec(v, pattern[i], "pattern", fmt::format("{}.pattern[{}]", base, i)));
    }
  } else if (mixer && !mixer.IsNull()) {
    m.pattern.push_back(parse_mixer_spec(v, mixer, "mixer", base + ".mixer"));
  } else {
    // No default mixer: an empty or truncated recipe must not train something nobody chose.
    std::string known;
    for (const auto& n : MixerRegistry::instance().names()) known += (known.empty() ? "" : ", ") + n;
    v.error("", "the recipe names no mixer: set model.mixer (one of: " + known +
                    ") or model.pattern, e.g. `extends: mixers/<name>.yaml`");
  }
}

}  // namespace

int64_t ModelConfig::resolved_mlp_hidden() const {
  if (mlp_hidden > 0) return mlp_hidden;
  if (block.mlp != "swiglu") return 4 * dim;  // GPT-2's width for two-matrix MLPs
  const int64_t raw = (8 * dim + 2) / 3;  // swiglu: three matrices at the cost of two 4·D ones
  return (raw + 31) / 32 * 32;
}

PartShape ModelConfig::part_shape() const {
  return PartShape{dim, resolved_mlp_hidden(), norm_eps, block.bias, max_seq_len};
}

RunConfig parse_run_config(const YamlSource& src) {
  std::vector<std::string> errors;
  RunConfig cfg;
  ParseVisitor root(src, src.root, "", errors);
  root.section("run", cfg.run, "");
  {
    ParseVisitor mv = root.child_visitor("model");
    parse_model(mv, cfg.model);
    mv.finish();
  }
  root.section("data", cfg.data, "");
  root.section("optim", cfg.optim, "");
  root.section("train", cfg.train, "");
  root.section("eval", cfg.eval, "");
  root.section("checkpoint", cfg.checkpoint, "");
  root.section("log", cfg.log, "");
  root.section("parallel", cfg.parallel, "");
  root.finish();
  if (!errors.empty()) throw ConfigError(errors);
  try {
    cfg.validate();
  } catch (const ConfigError& e) {  // cross-field rules: name the recipe they came from
    std::vector<std::string> named;
    for (const auto& p : e.problems()) named.push_back(src.recipe_path + ": " + p);
    throw ConfigError(named);
  }
  return cfg;
}

RunConfig load_run_config(const std::string& recipe, const std::vector<std::string>& overrides) {
  return parse_run_config(load_recipe(recipe, overrides));
}

void RunConfig::validate() const {
  std::vector<std::string> errors;
  auto rule = [&](bool ok, const std::string& msg) {
    if (!ok) errors.push_back("config: " + msg);
  };
  rule(data.seq_len <= model.max_seq_len,
       fmt::format("data.seq_len ({}) must not exceed model.max_seq_len ({})", data.seq_len,
                   model.max_seq_len));
  rule(data.tokenizer == "byte" || !data.tokenizer_path.empty(),
       fmt::format("data.tokenizer '{}' needs data.tokenizer_path", data.tokenizer));
  if (is_synthetic_source(data.source)) {
    rule(data.pack == "none", fmt::format("data.pack: documents needs token shards with EOTs, not "
                                          "data.source: {}", data.source));
    // Answer-only targets are not spread evenly over a sequence's context-parallel shards, so a
    // rank's mean would not be the sequence's.
    rule(parallel.cp <= 1, fmt::format("data.source: {} scores some positions only and cannot "
                                       "split a sequence: parallel.cp must be 1", data.source));
  }
  // A plain folder name: "..", "." or a path would put the run (and its config.yaml) elsewhere.
  const bool plain_name = !run.name.empty() && run.name != "." && run.name != ".." &&
                          run.name.size() <= 255 && run.name.find_first_of(std::string("/\\\0", 3)) == std::string::npos;
  rule(plain_name, fmt::format("run.name '{}' must be a plain folder name (not empty, '.' or '..', "
                               "no '/', at most 255 bytes)", run.name));
  if (!errors.empty()) throw ConfigError(errors);
}

std::string RunConfig::to_yaml() const {
  RunConfig copy = *this;  // visit() takes non-const refs
  YAML::Emitter out;
  EmitVisitor v(out);
  out << YAML::BeginMap;
  v.section("run", copy.run, "");
  out << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  copy.model.visit(v);
  out << YAML::Key << "pattern" << YAML::Value << YAML::BeginSeq;
  for (const auto& spec : copy.model.pattern) {
    out << YAML::BeginMap << YAML::Key << "type" << YAML::Value << spec.type;
    spec.options->emit(v);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
  v.section("data", copy.data, "");
  v.section("optim", copy.optim, "");
  v.section("train", copy.train, "");
  v.section("eval", copy.eval, "");
  v.section("checkpoint", copy.checkpoint, "");
  v.section("log", copy.log, "");
  v.section("parallel", copy.parallel, "");
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string RunConfig::model_hash(int64_t world_size) const {
  // What a resume may change (docs/checkpoints.md): where the run lives, how long it trains,
  // where and on how many threads it computes, and how often it logs, evaluates and saves.
  // Everything that shapes the model, the data order or the update stays in the hash.
  RunConfig copy = *this;
  copy.run = RunSection{};
  copy.train.steps = 1;
  copy.train.threads = 0;
  copy.train.batch_size = train.batch_size * world_size;
  copy.train.device = "auto";
  copy.optim.warmup_steps = 0;
  copy.eval = EvalConfig{};
  copy.checkpoint = CheckpointConfig{};
  copy.log = LogConfig{};
  copy.parallel = ParallelConfig{};
  const std::string text = copy.to_yaml();
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return fmt::format("{:016x}", h);
}

}  // namespace attnlab
