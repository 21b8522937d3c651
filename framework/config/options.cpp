#include "framework/config/options.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>

#include "framework/config/config_error.h"

namespace attnlab {
namespace {
std::string scalar_text(const YAML::Node& n) {
  if (n.IsScalar()) return "'" + n.Scalar() + "'";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  return "nothing";
}
}  // namespace

ParseVisitor::ParseVisitor(const YamlSource& src, YAML::Node node, std::string path,
                           std::vector<std::string>& errors)
    : src_(src), node_(node), path_(std::move(path)), errors_(errors) {
  if (node_.IsDefined() && !node_.IsNull() && !node_.IsMap()) {
    errors_.push_back(fmt::format("{}: {}: expected a mapping, got {}", src_.where(path_, node_),
                                  path_.empty() ? "<root>" : path_, scalar_text(node_)));
    node_.reset();  // rebind the handle; operator= would overwrite the config tree
  }
}

std::string ParseVisitor::child_path(const std::string& key) const {
  return path_.empty() ? key : path_ + "." + key;
}

YAML::Node ParseVisitor::lookup(const char* key) {
  known_.emplace_back(key);
  // A default YAML::Node is a *defined* null; absent keys must read as undefined.
  if (!node_.IsDefined() || node_.IsNull()) return YAML::Node(YAML::NodeType::Undefined);
  return node_[key];
}

YAML::Node ParseVisitor::take(const char* key) { return lookup(key); }

ParseVisitor ParseVisitor::child_visitor(const char* key) {
  return ParseVisitor(src_, lookup(key), child_path(key), errors_);
}

ParseVisitor ParseVisitor::child_visitor_of(YAML::Node node, const std::string& path) {
  return ParseVisitor(src_, node, path, errors_);
}

void ParseVisitor::error(const std::string& key, const std::string& what) {
  YAML::Node n = (node_.IsDefined() && !node_.IsNull() && node_[key]) ? node_[key] : node_;
  const std::string p = key.empty() ? path_ : child_path(key);
  errors_.push_back(fmt::format("{}: {}: {}", src_.where(p, n), p, what));
}

void ParseVisitor::operator()(const char* key, int64_t& v, const char*, Bounds b) {
  YAML::Node n = lookup(key);
  if (!n) return;
  long long parsed;
  if (!n.IsScalar() || !YAML::convert<long long>::decode(n, parsed))
    return error(key, "expected an integer, got " + scalar_text(n));
  if (parsed < b.lo || parsed > b.hi)
    return error(key, fmt::format("expected an integer in [{}, {}], got {}", b.lo, b.hi, parsed));
  v = parsed;
}

void ParseVisitor::operator()(const char* key, double& v, const char*, Bounds b) {
  YAML::Node n = lookup(key);
  if (!n) return;
  double parsed;
  if (!n.IsScalar() || !YAML::convert<double>::decode(n, parsed) || std::isnan(parsed))
    return error(key, "expected a number, got " + scalar_text(n));
  if (parsed < b.lo || parsed > b.hi)
    return error(key, fmt::format("expected a number in [{}, {}], got {}", b.lo, b.hi, parsed));
  v = parsed;
}

void ParseVisitor::operator()(const char* key, bool& v, const char*) {
  YAML::Node n = lookup(key);
  if (!n) return;
  bool parsed;
  if (!n.IsScalar() || !YAML::convert<bool>::decode(n, parsed))
    return error(key, "expected true or false, got " + scalar_text(n));
  v = parsed;
}

void ParseVisitor::operator()(const char* key, std::string& v, const char*, OneOf choices) {
  YAML::Node n = lookup(key);
  if (!n) return;
  if (!n.IsScalar()) return error(key, "expected a string, got " + scalar_text(n));
  const std::string s = n.Scalar();
  if (!choices.values.empty() &&
      std::find(choices.values.begin(), choices.values.end(), s) == choices.values.end()) {
    std::string list;
    for (const auto& c : choices.values) list += (list.empty() ? "" : " | ") + c;
    std::string hint = did_you_mean(s, choices.values);
    return error(key, fmt::format("expected one of {}, got '{}'{}", list, s,
                                  hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
  }
  v = s;
}

void ParseVisitor::operator()(const char* key, std::vector<int64_t>& v, const char*) {
  YAML::Node n = lookup(key);
  if (!n) return;
  if (!n.IsSequence()) return error(key, "expected a list of integers, got " + scalar_text(n));
  std::vector<int64_t> out;
  for (const auto& e : n) {
    long long x;
    if (!e.IsScalar() || !YAML::convert<long long>::decode(e, x))
      return error(key, "expected a list of integers, found " + scalar_text(e));
    out.push_back(x);
  }
  v = out;
}

void ParseVisitor::finish() {
  if (!node_.IsDefined() || node_.IsNull()) return;
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    const std::string key = it->first.as<std::string>();
    if (std::find(known_.begin(), known_.end(), key) != known_.end()) continue;
    std::string hint = did_you_mean(key, known_);
    std::string p = child_path(key);
    errors_.push_back(fmt::format("{}: {}: unknown key{}", src_.where(p, it->second), p,
                                  hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
  }
}

std::string DocVisitor::value_text(double v) { return fmt::format("{}", v); }
std::string DocVisitor::value_text(const std::vector<int64_t>& v) {
  return fmt::format("[{}]", fmt::join(v, ", "));
}
std::string DocVisitor::extra_text(const Bounds& b) {
  std::string lo = std::isinf(b.lo) ? "" : fmt::format("{}", b.lo);
  std::string hi = std::isinf(b.hi) ? "" : fmt::format("{}", b.hi);
  return fmt::format(", range [{}..{}]", lo, hi);
}
std::string DocVisitor::extra_text(const OneOf& o) {
  return fmt::format(", one of {}", fmt::join(o.values, "|"));
}

}  // namespace attnlab
