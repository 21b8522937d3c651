#include "framework/config/yaml_source.h"

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <set>

#include "framework/config/config_error.h"

namespace fs = std::filesystem;

namespace attnlab {
namespace {

std::string join_path(const std::string& base, const std::string& key) {
  return base.empty() ? key : base + "." + key;
}

void record_origins(const YAML::Node& node, const std::string& path, const std::string& file,
                    std::map<std::string, std::string>& origin) {
  origin[path] = file;
  if (node.IsMap())
    for (auto it = node.begin(); it != node.end(); ++it)
      record_origins(it->second, join_path(path, it->first.as<std::string>()), file, origin);
}

// Deep merge `src` into `dst` (maps merge recursively, anything else replaces) and record where
// every value came from. Nodes are shared, not cloned: YAML::Clone drops the line marks.
void merge_into(YAML::Node dst, const YAML::Node& src, const std::string& path,
                const std::string& file, std::map<std::string, std::string>& origin) {
  for (auto it = src.begin(); it != src.end(); ++it) {
    const std::string key = it->first.as<std::string>();
    const std::string child = join_path(path, key);
    YAML::Node existing = dst[key];
    // Maps merge, except a map whose `type:` changes (swapping the mixer): its options belong to
    // the old type, so the new map replaces it whole.
    const bool type_changes = it->second.IsMap() && existing.IsMap() && it->second["type"] &&
                              existing["type"] && it->second["type"].IsScalar() &&
                              existing["type"].IsScalar() &&
                              it->second["type"].Scalar() != existing["type"].Scalar();
    if (it->second.IsMap() && existing.IsDefined() && existing.IsMap() && !type_changes) {
      merge_into(existing, it->second, child, file, origin);
      continue;
    }
    dst[key] = it->second;
    // A replaced subtree forgets where its old values came from.
    for (auto o = origin.lower_bound(child + "."); o != origin.end() && o->first.rfind(child + ".", 0) == 0;)
      o = origin.erase(o);
    record_origins(it->second, child, file, origin);
  }
}

fs::path find_configs_dir(const fs::path& start) {
  if (const char* env = std::getenv("ATTNLAB_CONFIG_DIR")) return env;
  for (fs::path p = fs::absolute(start); !p.empty(); p = p.parent_path()) {
    if (fs::is_directory(p / "configs")) return p / "configs";
    if (p == p.parent_path()) break;
  }
  return {};
}

YAML::Node parse_file(const fs::path& file) {
  if (!fs::exists(file)) throw ConfigError({file.string() + ": file not found"});
  try {
    YAML::Node n = YAML::LoadFile(file.string());
    if (n.IsNull()) return YAML::Node(YAML::NodeType::Map);
    if (!n.IsMap()) throw ConfigError({file.string() + ":1:1: expected a mapping at the top level"});
    return n;
  } catch (const YAML::Exception& e) {
    throw ConfigError({file.string() + ":" + std::to_string(e.mark.line + 1) + ":" +
                       std::to_string(e.mark.column + 1) + ": invalid YAML: " + e.msg});
  }
}

void load_into(const fs::path& file, YamlSource& out, std::set<std::string>& stack) {
  const std::string key = fs::weakly_canonical(file).string();
  if (stack.count(key)) throw ConfigError({file.string() + ": `extends:` cycle"});
  stack.insert(key);
  YAML::Node doc = parse_file(file);
  if (YAML::Node ext = doc["extends"]) {
    std::vector<std::string> parents;
    if (ext.IsScalar()) parents.push_back(ext.as<std::string>());
    else if (ext.IsSequence()) for (const auto& e : ext) parents.push_back(e.as<std::string>());
    else throw ConfigError({file.string() + ":" + std::to_string(ext.Mark().line + 1) +
                            ": extends: expected a file name or a list of them"});
    for (const auto& parent : parents) {
      fs::path candidate = file.parent_path() / parent;
      if (!fs::exists(candidate)) {
        fs::path configs = find_configs_dir(file.parent_path());
        if (!configs.empty() && fs::exists(configs / parent)) candidate = configs / parent;
        else if (!configs.empty() && fs::exists(configs / (parent + ".yaml")))
          candidate = configs / (parent + ".yaml");
        else
          throw ConfigError({file.string() + ":" + std::to_string(ext.Mark().line + 1) +
                             ": extends: cannot find '" + parent + "' next to the file or in " +
                             (configs.empty() ? std::string("configs/") : configs.string())});
      }
      load_into(candidate, out, stack);
    }
    doc.remove("extends");
  }
  merge_into(out.root, doc, "", file.string(), out.origin);
  stack.erase(key);
}

void apply_override(YamlSource& src, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError({"--set " + assignment + ": expected key.path=value"});
  const std::string path = assignment.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw ConfigError({"--set " + assignment + ": value is not valid YAML: " + e.msg});
  }
  // Build {a: {b: {c: value}}} from the inside out. (Assigning one YAML::Node handle to another
  // overwrites the referenced node, so no handle is ever reassigned here.)
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  std::function<YAML::Node(size_t)> wrap = [&](size_t i) {
    if (i == parts.size()) return value;
    YAML::Node m(YAML::NodeType::Map);
    m[parts[i]] = wrap(i + 1);
    return m;
  };
  YAML::Node patch = wrap(0);
  merge_into(src.root, patch, "", "--set " + assignment, src.origin);
}

}  // namespace

std::string YamlSource::where(const std::string& path, const YAML::Node& node) const {
  std::string file = recipe_path;
  for (std::string p = path;; p = p.substr(0, p.rfind('.'))) {
    if (auto it = origin.find(p); it != origin.end()) { file = it->second; break; }
    if (p.find('.') == std::string::npos) break;
  }
  if (file.rfind("--set", 0) == 0 || !node.IsDefined() || node.Mark().is_null()) return file;
  return file + ":" + std::to_string(node.Mark().line + 1) + ":" +
         std::to_string(node.Mark().column + 1);
}

YamlSource load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  YamlSource src;
  src.root = YAML::Node(YAML::NodeType::Map);
  src.recipe_path = path;
  std::set<std::string> stack;
  load_into(fs::path(path), src, stack);
  for (const auto& o : overrides) apply_override(src, o);
  return src;
}

YamlSource load_yaml_text(const std::string& text, const std::string& name) {
  YamlSource src;
  src.recipe_path = name;
  try {
    src.root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError({name + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg});
  }
  if (src.root.IsNull()) src.root = YAML::Node(YAML::NodeType::Map);
  return src;
}

}  // namespace attnlab
