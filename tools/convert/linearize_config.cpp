#include "tools/convert/linearize_config.h"

#include <fmt/format.h>

#include <algorithm>

namespace attnlab::convert {

ConvertConfig parse_convert_config(const YamlSource& src) {
  std::vector<std::string> errors;
  ConvertConfig c;
  ParseVisitor root(src, src.root, "", errors);
  ParseVisitor v = root.child_visitor("convert");
  c.visit(v);
  c.target = v.take("target");
  if (!c.target || !c.target.IsMap() || !c.target["type"] || !c.target["type"].IsScalar())
    v.error("target", "expected a mapping with `type:` (the mixer every converted layer becomes) and its options");
  v.section("transfer", c.transfer, "");
  {
    ParseVisitor lora = v.child_visitor("lora");
    if (lora.defined()) {
      c.lora.visit(lora);
      if (YAML::Node t = lora.take("targets")) {
        c.lora.targets.clear();
        if (!t.IsSequence() || t.size() == 0) lora.error("targets", "expected a non-empty list of linear layer names");
        else
          for (const auto& name : t) c.lora.targets.push_back(name.as<std::string>());
      }
      lora.finish();
    }
  }
  if (c.teacher.empty()) v.error("teacher", "expected the teacher's run folder");
  v.finish();
  if (!errors.empty()) throw ConfigError(errors);
  return c;
}

std::vector<int64_t> converted_layers(const ConvertConfig& c, int64_t num_layers) {
  std::vector<std::string> errors;
  auto check = [&](const std::vector<int64_t>& list, const char* key) {
    for (int64_t i : list)
      if (i < 0 || i >= num_layers)
        errors.push_back(fmt::format("convert.{}: layer {} does not exist (the teacher has {} layers)", key, i, num_layers));
  };
  check(c.layers, "layers"), check(c.keep, "keep");
  auto kept = [&](int64_t i) {
    return std::count(c.keep.begin(), c.keep.end(), i) > 0 || (c.keep_every > 0 && (i + 1) % c.keep_every == 0);
  };
  std::vector<int64_t> out;
  for (int64_t i = 0; i < num_layers; ++i) {
    const bool listed = c.layers.empty() || std::count(c.layers.begin(), c.layers.end(), i) > 0;
    if (!c.layers.empty() && listed && kept(i))
      errors.push_back(fmt::format("convert: layer {} is both in convert.layers and kept as softmax", i));
    if (listed && !kept(i)) out.push_back(i);
  }
  if (out.empty() && errors.empty()) errors.push_back("convert: no layer is left to convert");
  if (!errors.empty()) throw ConfigError(errors);
  return out;
}

}  // namespace attnlab::convert
