#include "tools/convert/student_model.h"

#include <ATen/core/grad_mode.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <set>

#include "framework/train/setup.h"

namespace attnlab::convert {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

std::string scalar_text(const YAML::Node& n) { return n.IsScalar() ? n.Scalar() : YAML::Dump(n); }

std::string shape_text(const at::Tensor& t) { return fmt::format("[{}]", fmt::join(t.sizes(), ", ")); }

}  // namespace

YAML::Node mixer_spec_node(const MixerSpec& spec) {
  YAML::Emitter out;
  EmitVisitor v(out);
  out << YAML::BeginMap << YAML::Key << "type" << YAML::Value << spec.type;
  spec.options->emit(v);
  out << YAML::EndMap;
  return YAML::Load(out.c_str());
}

YAML::Node student_pattern(const ModelConfig& teacher, const ConvertConfig& c, const std::vector<int64_t>& converted) {
  const std::string type = c.target["type"].Scalar();
  const YAML::Node target_defaults = mixer_spec_node(default_mixer_spec(type));  // throws for an unknown type
  YAML::Node pattern(YAML::NodeType::Sequence);
  for (int64_t i = 0; i < teacher.layers; ++i) {
    const MixerSpec& t = teacher.pattern[static_cast<size_t>(i) % teacher.pattern.size()];
    if (std::find(converted.begin(), converted.end(), i) == converted.end()) {
      pattern.push_back(mixer_spec_node(t));
      continue;
    }
    if (t.type != "softmax")
      throw ConfigError({fmt::format("convert: layer {} of the teacher is '{}': only softmax layers convert "
                                     "(list the layers with convert.layers or convert.keep)", i, t.type)});
    YAML::Node entry = YAML::Clone(c.target);
    for (const auto& kv : mixer_spec_node(t)) {
      const std::string key = kv.first.Scalar();
      if (key == "type" || !target_defaults[key] || entry[key]) continue;
      // softmax says rope: rotary | none where the linear mixers say rope: true | false.
      const bool flag = key == "rope" && (target_defaults[key].Scalar() == "true" || target_defaults[key].Scalar() == "false");
      entry[key] = flag ? YAML::Node(kv.second.Scalar() != "none") : YAML::Clone(kv.second);
    }
    pattern.push_back(entry);
  }
  return pattern;
}

std::vector<std::string> take_teacher_weights(LanguageModel& student, const ModelConfig& teacher,
                                              const std::map<std::string, at::Tensor>& teacher_weights,
                                              const std::vector<int64_t>& converted, const std::string& origin) {
  std::vector<std::string> errors, trained;
  std::set<std::string> used;
  const YAML::Node softmax_defaults = mixer_spec_node(default_mixer_spec("softmax"));
  std::map<int64_t, AttentionTakeover> takeover;
  for (int64_t l : converted) {
    const Block& block = student->layers[static_cast<size_t>(l)];
    takeover[l] = block->mixer->attention_takeover();
    if (takeover[l].inherits.empty()) {
      errors.push_back(fmt::format("convert.target: '{}' declares no takeover of softmax weights, so it cannot "
                                   "be a conversion target (docs/conversion.md lists those that can)",
                                   block->mixer_type));
      continue;
    }
    // A teacher option the target has no counterpart for changes the function unless it is at its
    // default or the target drops it knowingly (e.g. rope_base for a mixer without RoPE).
    const YAML::Node student_opts = mixer_spec_node(default_mixer_spec(block->mixer_type));
    for (const auto& kv : mixer_spec_node(teacher.pattern[static_cast<size_t>(l) % teacher.pattern.size()])) {
      const std::string key = kv.first.Scalar();
      const auto& drops = takeover[l].drops_options;
      if (key == "type" || student_opts[key] || std::count(drops.begin(), drops.end(), key)) continue;
      if (scalar_text(kv.second) != scalar_text(softmax_defaults[key]))
        errors.push_back(fmt::format("convert.target: teacher layer {} has softmax option {}: {}, which '{}' does not "
                                     "implement; the converted layer would compute something else",
                                     l, key, scalar_text(kv.second), block->mixer_type));
    }
  }
  if (!errors.empty()) throw ConfigError(errors);

  at::NoGradGuard no_grad;
  for (auto& [name, p] : named_parameters(student)) {
    int64_t layer = -1;
    std::string rest;
    const std::string block_prefix = "model.layers.";
    if (starts_with(name, block_prefix)) {
      const size_t dot = name.find('.', block_prefix.size());
      layer = std::stoll(name.substr(block_prefix.size(), dot - block_prefix.size()));
      rest = name.substr(dot + 1);
    }
    const auto conv = takeover.find(layer);
    const bool in_new_mixer = conv != takeover.end() && starts_with(rest, "mixer.");
    const bool inherited = !in_new_mixer || std::any_of(conv->second.inherits.begin(), conv->second.inherits.end(),
                                                        [&](const std::string& pre) { return starts_with(rest, "mixer." + pre); });
    if (!inherited) {  // new: trained by attention transfer
      trained.push_back(name);
      continue;
    }
    p.set_requires_grad(false);
    const auto found = teacher_weights.find(name);
    if (found == teacher_weights.end()) {
      errors.push_back(fmt::format("{}: the teacher has no tensor {} for the student's", origin, name));
      continue;
    }
    used.insert(name);
    if (!found->second.sizes().equals(p.sizes())) {
      errors.push_back(fmt::format("{}: tensor {} is {} in the teacher but {} in the student{}", origin, name,
                                   shape_text(found->second), shape_text(p),
                                   in_new_mixer ? " (set the target's width options to match the teacher's heads)" : ""));
      continue;
    }
    p.copy_(found->second.to(p.dtype()));
  }
  for (const auto& [name, t] : teacher_weights)
    if (!used.count(name))
      errors.push_back(fmt::format("{}: the teacher's tensor {} {} has no place in the student (its mixer "
                                   "does not inherit it)", origin, name, shape_text(t)));
  if (!errors.empty()) throw ConfigError(errors);
  return trained;
}

}  // namespace attnlab::convert
