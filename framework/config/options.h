// Typed options, declared once. Every options struct (trainer sections, mixer options) lists
// its fields in one `template <class V> void visit(V& v)`:
//     v("lr", lr, "peak learning rate", Bounds{0, 1});
// and the visitors below turn that single list into YAML parsing with file:line errors and
// did-you-mean for unknown keys (ParseVisitor), YAML output (EmitVisitor) and the option table
// printed by `attnlab list` (DocVisitor). Defaults live in the member initialisers only.
#pragma once
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "framework/config/config_error.h"
#include "framework/config/yaml_source.h"

namespace attnlab {

struct Bounds {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
};
struct OneOf {
  std::vector<std::string> values;
};

class ParseVisitor {
 public:
  ParseVisitor(const YamlSource& src, YAML::Node node, std::string path,
               std::vector<std::string>& errors);

  void operator()(const char* key, int64_t& v, const char* doc, Bounds b = {});
  void operator()(const char* key, double& v, const char* doc, Bounds b = {});
  void operator()(const char* key, bool& v, const char* doc);
  void operator()(const char* key, std::string& v, const char* doc, OneOf choices = {});
  void operator()(const char* key, std::vector<int64_t>& v, const char* doc);

  template <class S>
  void section(const char* key, S& s, const char* /*doc*/) {
    ParseVisitor child = child_visitor(key);
    if (child.node_.IsDefined()) {
      s.visit(child);
      child.finish();
    }
  }

  /// Raw access for fields with a custom shape (e.g. mixer lists); marks the key as known.
  YAML::Node take(const char* key);
  ParseVisitor child_visitor(const char* key);
  ParseVisitor child_visitor_of(YAML::Node node, const std::string& path);
  /// Records an error at `key` of this node.
  void error(const std::string& key, const std::string& what);
  /// Reports every key not visited, with a did-you-mean.
  void finish();

  const std::string& path() const { return path_; }
  bool defined() const { return node_.IsDefined() && !node_.IsNull(); }

 private:
  YAML::Node lookup(const char* key);
  std::string child_path(const std::string& key) const;

  const YamlSource& src_;
  YAML::Node node_;
  std::string path_;
  std::vector<std::string>& errors_;
  std::vector<std::string> known_;
};

class EmitVisitor {
 public:
  explicit EmitVisitor(YAML::Emitter& out) : out_(out) {}
  template <class T, class... Extra>
  void operator()(const char* key, const T& v, const char*, Extra&&...) {
    out_ << YAML::Key << key << YAML::Value;
    if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
      out_ << YAML::Flow << YAML::BeginSeq;
      for (auto x : v) out_ << x;
      out_ << YAML::EndSeq;
    } else if constexpr (std::is_same_v<T, double>) {
      out_ << YAML::Precision(17) << v;
    } else {
      out_ << v;
    }
  }
  template <class S>
  void section(const char* key, S& s, const char*) {
    out_ << YAML::Key << key << YAML::Value << YAML::BeginMap;
    s.visit(*this);
    out_ << YAML::EndMap;
  }
  YAML::Emitter& emitter() { return out_; }

 private:
  YAML::Emitter& out_;
};

/// One line per option: "name (type, default value): doc".
class DocVisitor {
 public:
  template <class T, class... Extra>
  void operator()(const char* key, const T& v, const char* doc, Extra&&... extra) {
    std::string line = prefix_ + key + " (" + type_name(v) + ", default " + value_text(v) + ")";
    ((line += extra_text(extra)), ...);
    lines.push_back(line + ": " + doc);
  }
  template <class S>
  void section(const char* key, S& s, const char*) {
    std::string saved = prefix_;
    prefix_ += std::string(key) + ".";
    s.visit(*this);
    prefix_ = saved;
  }
  std::vector<std::string> lines;

 private:
  static std::string type_name(int64_t) { return "int"; }
  static std::string type_name(double) { return "float"; }
  static std::string type_name(bool) { return "bool"; }
  static std::string type_name(const std::string&) { return "string"; }
  static std::string type_name(const std::vector<int64_t>&) { return "int list"; }
  static std::string value_text(int64_t v) { return std::to_string(v); }
  static std::string value_text(double v);
  static std::string value_text(bool v) { return v ? "true" : "false"; }
  static std::string value_text(const std::string& v) { return v.empty() ? "\"\"" : v; }
  static std::string value_text(const std::vector<int64_t>& v);
  static std::string extra_text(const Bounds& b);
  static std::string extra_text(const OneOf& o);
  std::string prefix_;
};

/// Parses `node` into a fresh T, throwing ConfigError with every problem found.
template <class T>
T parse_options(const YamlSource& src, const YAML::Node& node, const std::string& path) {
  std::vector<std::string> errors;
  ParseVisitor v(src, node, path, errors);
  T t;
  t.visit(v);
  v.finish();
  if (!errors.empty()) throw ConfigError(errors);
  return t;
}

template <class T>
std::string emit_options(T& t) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  EmitVisitor v(out);
  t.visit(v);
  out << YAML::EndMap;
  return out.c_str();
}

template <class T>
std::vector<std::string> describe_options() {
  T t;
  DocVisitor v;
  t.visit(v);
  return v.lines;
}

}  // namespace attnlab

