// Loading a recipe: read YAML, resolve `extends:` (depth first, later keys win), apply
// `--set a.b.c=value` overrides, and remember which file every value came from so errors can
// name it. Search order for an `extends:` entry: relative to the including file, then the
// project's configs/ folder (the nearest ancestor holding one, or $ATTNLAB_CONFIG_DIR).
#pragma once
#include <yaml-cpp/yaml.h>

#include <map>
#include <string>
#include <vector>

namespace attnlab {

struct YamlSource {
  YAML::Node root;
  /// dotted path -> file it was set in ("--set" for CLI overrides).
  std::map<std::string, std::string> origin;
  std::string recipe_path;
  int files_loaded = 0;  ///< through `extends:`, bounded (yaml_source.cpp)

  /// "file:line:col" for a dotted path (nearest recorded ancestor when the path itself is absent).
  std::string where(const std::string& path, const YAML::Node& node) const;
};

YamlSource load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});

/// Parses a YAML document from text (tests and `--set` values); `name` stands in for the file.
YamlSource load_yaml_text(const std::string& text, const std::string& name);

}  // namespace attnlab
