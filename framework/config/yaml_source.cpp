#include "framework/config/yaml_source.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <yaml-cpp/depthguard.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
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

constexpr int64_t kMaxRecipeBytes = 1 << 20;  // recipes are a few KB; this is generous
constexpr int64_t kMaxNodes = 100000;         // after alias expansion (the "billion laughs" shape)
constexpr int kMaxDepth = 64;
constexpr int kMaxRecipeFiles = 256;  // files one recipe may load through `extends:`

// A file name fit for a message (a hostile name may be thousands of bytes long).
std::string shown(const fs::path& p) {
  const std::string s = p.string();
  return s.size() <= 200 ? s : s.substr(0, 200) + "...";
}

std::string at_mark(const std::string& file, const YAML::Mark& m) {
  return m.is_null() ? file : file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

// Bounded read of a recipe: a regular file (a FIFO would block, /dev/zero never end), of
// plausible size, holding text.
std::string read_recipe_text(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) throw ConfigError({shown(file) + ": file not found"});
    throw ConfigError({shown(file) + ": cannot read: " + std::strerror(errno)});
  }
  if (!S_ISREG(st.st_mode))
    throw ConfigError({shown(file) + ": not a regular file (a folder, FIFO or device); expected a YAML recipe"});
  if (st.st_size > kMaxRecipeBytes)
    throw ConfigError({fmt::format("{}: {} bytes; a recipe may hold at most {}", shown(file),
                                   static_cast<int64_t>(st.st_size), kMaxRecipeBytes)});
  std::ifstream f(file, std::ios::binary);
  if (!f) throw ConfigError({shown(file) + ": cannot open"});
  std::string text(static_cast<size_t>(kMaxRecipeBytes) + 1, '\0');
  f.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(f.gcount()));
  if (static_cast<int64_t>(text.size()) > kMaxRecipeBytes)
    throw ConfigError({shown(file) + ": grew past the recipe size limit while being read"});
  if (text.find('\0') != std::string::npos)
    throw ConfigError({shown(file) + ": holds NUL bytes: a binary file, not a YAML recipe"});
  return text;
}

// Structural rules yaml-cpp does not enforce: bounded size after alias expansion, bounded
// depth, scalar keys, no duplicate keys (yaml-cpp keeps both and lookups see the first).
void check_tree(const YAML::Node& n, const std::string& file, const std::string& path,
                int64_t& budget, int depth) {
  if (--budget < 0)
    throw ConfigError({fmt::format("{}: expands to more than {} YAML nodes (aliases nested in "
                                   "aliases?); refusing to load it", file, kMaxNodes)});
  if (depth > kMaxDepth)
    throw ConfigError({fmt::format("{}: {}: nested deeper than {} levels", at_mark(file, n.Mark()),
                                   path.empty() ? "<root>" : path, kMaxDepth)});
  if (n.IsMap()) {
    std::map<std::string, YAML::Mark> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!it->first.IsScalar())
        throw ConfigError({fmt::format("{}: {}: keys must be plain names, not lists or mappings",
                                       at_mark(file, it->first.Mark()), path.empty() ? "<root>" : path)});
      const std::string key = it->first.Scalar();
      const std::string child = join_path(path, key);
      auto [prev, fresh] = seen.emplace(key, it->first.Mark());
      if (!fresh)
        throw ConfigError({fmt::format("{}: {}: duplicate key (first set at line {})",
                                       at_mark(file, it->first.Mark()), child, prev->second.line + 1)});
      check_tree(it->second, file, child, budget, depth + 1);
    }
  } else if (n.IsSequence()) {
    for (size_t i = 0; i < n.size(); ++i)
      check_tree(n[i], file, fmt::format("{}[{}]", path, i), budget, depth + 1);
  }
}

YAML::Node load_checked(const std::string& text, const std::string& file) {
  YAML::Node n;
  try {
    n = YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {  // yaml-cpp's own depth guard; its message says "bad file"
    throw ConfigError({fmt::format("{}: nested deeper than {} levels", at_mark(file, e.mark), e.depth())});
  } catch (const YAML::Exception& e) {
    throw ConfigError({at_mark(file, e.mark) + ": invalid YAML: " + e.msg});
  }
  int64_t budget = kMaxNodes;
  check_tree(n, file, "", budget, 0);
  return n;
}

YAML::Node parse_file(const fs::path& file) {
  YAML::Node n = load_checked(read_recipe_text(file), shown(file));
  if (n.IsNull()) return YAML::Node(YAML::NodeType::Map);
  if (!n.IsMap()) throw ConfigError({shown(file) + ":1:1: expected a mapping at the top level"});
  return n;
}

// Exists as anything, without throwing on hostile names (ENAMETOOLONG and the like).
bool path_exists(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

void load_into(const fs::path& file, YamlSource& out, std::set<std::string>& stack) {
  // Siblings may repeat (a lists b twice, b lists c twice, ...): bound the total, not the depth.
  if (++out.files_loaded > kMaxRecipeFiles)
    throw ConfigError({fmt::format("{}: `extends:` pulls in more than {} files", shown(file), kMaxRecipeFiles)});
  YAML::Node doc = parse_file(file);  // first: it refuses folders, FIFOs and the like
  std::error_code ec;
  const std::string key = fs::weakly_canonical(file, ec).string();
  if (stack.count(key) || stack.size() > 64)
    throw ConfigError({shown(file) + ": `extends:` cycle or chain deeper than 64 files"});
  stack.insert(key);
  if (YAML::Node ext = doc["extends"]) {
    const std::string where = at_mark(shown(file), ext.Mark());
    std::vector<std::string> parents;
    auto add = [&](const YAML::Node& e) {
      if (!e.IsScalar() || e.Scalar().empty() || e.Scalar().size() > 1024)
        throw ConfigError({where + ": extends: expected file names (at most 1024 bytes each)"});
      parents.push_back(e.Scalar());
    };
    if (ext.IsScalar()) add(ext);
    else if (ext.IsSequence()) for (const auto& e : ext) add(e);
    else throw ConfigError({where + ": extends: expected a file name or a list of them"});
    for (const auto& parent : parents) {
      fs::path candidate = file.parent_path() / parent;
      if (!path_exists(candidate)) {
        fs::path configs = find_configs_dir(file.parent_path());
        if (!configs.empty() && path_exists(configs / parent)) candidate = configs / parent;
        else if (!configs.empty() && path_exists(configs / (parent + ".yaml")))
          candidate = configs / (parent + ".yaml");
        else
          throw ConfigError({where + ": extends: cannot find '" + shown(parent) +
                             "' next to the file or in " +
                             (configs.empty() ? std::string("configs/") : configs.string())});
      }
      load_into(candidate, out, stack);
    }
    doc.remove("extends");
  }
  merge_into(out.root, doc, "", shown(file), out.origin);
  stack.erase(key);
}

void apply_override(YamlSource& src, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError({"--set " + assignment + ": expected key.path=value"});
  const std::string path = assignment.substr(0, eq);
  const YAML::Node value = load_checked(assignment.substr(eq + 1), "--set " + path);
  // Build {a: {b: {c: value}}} from the inside out. (Assigning one YAML::Node handle to another
  // overwrites the referenced node, so no handle is ever reassigned here.)
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot - start));
    if (parts.back().empty()) throw ConfigError({"--set " + assignment + ": empty key in '" + path + "'"});
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
  src.root = load_checked(text, name);
  if (src.root.IsNull()) src.root = YAML::Node(YAML::NodeType::Map);
  return src;
}

}  // namespace attnlab
