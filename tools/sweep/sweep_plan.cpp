#include "tools/sweep/sweep_plan.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "framework/config/config_error.h"

namespace attnlab::sweep {
namespace {

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

/// A value of a `sweep:` list as the YAML text --set takes: scalars as they are, maps and
/// lists in flow style.
std::string value_text(const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  YAML::Emitter out;
  out << YAML::Flow << n;
  return out.c_str();
}

/// A value as a folder-name part: letters, digits, '.' and '-' kept, runs of anything else one '_'.
std::string name_part(const std::string& value) {
  std::string out;
  for (char c : value) {
    const bool keep = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-';
    if (keep) out += c;
    else if (!out.empty() && out.back() != '_') out += '_';
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out.empty() ? "empty" : out;
}

std::string last_component(const std::string& key) {
  const size_t dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

}  // namespace

std::vector<std::string> split_top_level(const std::string& text) {
  std::vector<std::string> parts;
  std::string cur;
  int depth = 0;
  char quote = 0;
  for (char c : text) {
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == ',' && depth == 0) {
      parts.push_back(trim(cur));
      cur.clear();
      continue;
    }
    cur += c;
  }
  parts.push_back(trim(cur));
  return parts;
}

SweepAxis parse_grid_argument(const std::string& arg) {
  const size_t eq = arg.find('=');
  const std::string key = eq == std::string::npos ? "" : trim(arg.substr(0, eq));
  if (key.empty() || key.find_first_of(" {}[],") != std::string::npos)
    throw ConfigError({fmt::format("--grid {}: expected key=v1,v2,... (a dotted config key, then values)", arg)});
  SweepAxis axis{{key}, {}};
  for (const std::string& v : split_top_level(arg.substr(eq + 1))) {
    if (v.empty()) throw ConfigError({fmt::format("--grid {}: an empty value", arg)});
    axis.points.push_back({v});
  }
  return axis;
}

std::vector<SweepAxis> sweep_section_axes(const YamlSource& src, int64_t* seeds) {
  *seeds = 1;
  const YAML::Node s = src.root["sweep"];
  if (!s) return {};
  const std::string where = src.recipe_path;
  std::vector<std::string> errors;
  if (!s.IsMap()) throw ConfigError({fmt::format("{}: sweep: expected a mapping {{grid, zip, seeds}}", where)});
  std::vector<SweepAxis> axes;
  auto values_of = [&](const YAML::Node& list, const std::string& path, std::vector<std::string>& out) {
    if (!list.IsSequence() || list.size() == 0) {
      errors.push_back(fmt::format("{}: {}: expected a non-empty list of values", where, path));
      return;
    }
    for (const auto& v : list) out.push_back(value_text(v));
  };
  for (const auto& kv : s) {
    const std::string field = kv.first.Scalar();
    if (field == "seeds") {
      try {
        *seeds = kv.second.as<int64_t>();
      } catch (const YAML::Exception&) {
        *seeds = 0;
      }
      if (*seeds < 1) errors.push_back(fmt::format("{}: sweep.seeds: expected an integer >= 1", where));
    } else if (field == "grid") {
      if (!kv.second.IsMap()) {
        errors.push_back(fmt::format("{}: sweep.grid: expected a mapping key: [values]", where));
        continue;
      }
      for (const auto& g : kv.second) {
        std::vector<std::string> vals;
        values_of(g.second, fmt::format("sweep.grid.{}", g.first.Scalar()), vals);
        SweepAxis a{{g.first.Scalar()}, {}};
        for (auto& v : vals) a.points.push_back({v});
        axes.push_back(a);
      }
    } else if (field == "zip") {
      if (!kv.second.IsSequence()) {
        errors.push_back(fmt::format("{}: sweep.zip: expected a list of mappings key: [values]", where));
        continue;
      }
      for (size_t i = 0; i < kv.second.size(); ++i) {
        const YAML::Node z = kv.second[i];
        const std::string path = fmt::format("sweep.zip[{}]", i);
        if (!z.IsMap() || z.size() == 0) {
          errors.push_back(fmt::format("{}: {}: expected a mapping key: [values]", where, path));
          continue;
        }
        SweepAxis a;
        std::vector<std::vector<std::string>> columns;
        for (const auto& kv2 : z) {
          a.keys.push_back(kv2.first.Scalar());
          columns.emplace_back();
          values_of(kv2.second, fmt::format("{}.{}", path, a.keys.back()), columns.back());
        }
        const size_t n = columns[0].size();
        bool same = true;
        for (size_t k = 1; k < columns.size(); ++k) same = same && columns[k].size() == n;
        if (!same) {
          errors.push_back(fmt::format("{}: {}: zipped lists must have the same length ({})", where, path,
                                       fmt::join(a.keys, ", ")));
          continue;
        }
        for (size_t p = 0; p < n; ++p) {
          a.points.emplace_back();
          for (const auto& col : columns) a.points.back().push_back(col[p]);
        }
        axes.push_back(a);
      }
    } else {
      errors.push_back(fmt::format("{}: sweep.{}: unknown field (grid, zip, seeds)", where, field));
    }
  }
  if (!errors.empty()) throw ConfigError(errors);
  return axes;
}

std::vector<SweepRun> expand_sweep(std::vector<SweepAxis> axes, int64_t seeds, int64_t base_seed) {
  if (seeds > 1) {
    SweepAxis s{{"run.seed"}, {}};
    for (int64_t i = 0; i < seeds; ++i) s.points.push_back({std::to_string(base_seed + i)});
    axes.push_back(s);
  }
  std::map<std::string, int> seen_keys, last_names;
  for (const auto& a : axes)
    for (const auto& k : a.keys) {
      if (seen_keys[k]++)
        throw ConfigError({fmt::format("sweep: {} is swept by two axes (--grid and sweep:, or twice)", k)});
      ++last_names[last_component(k)];
    }
  auto label = [&](const std::string& key) {
    return last_names[last_component(key)] > 1 ? name_part(key) : last_component(key);
  };
  std::vector<SweepRun> runs(1);
  for (const auto& a : axes) {
    std::vector<SweepRun> next;
    for (const auto& r : runs)
      for (const auto& point : a.points) {
        SweepRun n = r;
        for (size_t k = 0; k < a.keys.size(); ++k) {
          n.overrides.push_back(fmt::format("{}={}", a.keys[k], point[k]));
          n.values.emplace_back(a.keys[k], point[k]);
          n.name = fmt::format("{}{}{}-{}", n.name, n.name.empty() ? "" : "__", label(a.keys[k]), name_part(point[k]));
        }
        next.push_back(n);
      }
    runs = next;
  }
  if (runs.size() == 1 && runs[0].name.empty()) runs[0].name = "base";
  std::set<std::string> names;
  for (const auto& r : runs)
    if (!names.insert(r.name).second)
      throw ConfigError({fmt::format("sweep: two runs would both be named {} (values that differ only in "
                                     "characters a folder name drops); make them distinct", r.name)});
  return runs;
}

}  // namespace attnlab::sweep
