// Registry<Entry>: name -> entry, filled by static registrars at start-up. The only global
// mutable state besides the logger. Lookups of unknown names fail with a did-you-mean.
#pragma once
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "framework/config/config_error.h"

namespace attnlab {

template <class Entry>
class Registry {
 public:
  static Registry& instance() {
    static Registry r;
    return r;
  }
  bool add(const std::string& name, Entry entry) {
    if (!entries_.emplace(name, std::move(entry)).second)
      throw std::logic_error("registry: '" + name + "' registered twice");
    return true;
  }
  const Entry* find(const std::string& name) const {
    auto it = entries_.find(name);
    return it == entries_.end() ? nullptr : &it->second;
  }
  /// The entry `name`; throws std::invalid_argument with unknown_message(kind, name) if absent.
  const Entry& get(const std::string& kind, const std::string& name) const {
    const Entry* e = find(name);
    if (!e) throw std::invalid_argument(unknown_message(kind, name));
    return *e;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [k, _] : entries_) out.push_back(k);
    return out;
  }
  /// "unknown mixer 'sofmax' (did you mean 'softmax'?); known: a, b, c"
  std::string unknown_message(const std::string& kind, const std::string& name) const {
    std::string hint = did_you_mean(name, names());
    std::string known;
    for (const auto& n : names()) known += (known.empty() ? "" : ", ") + n;
    return "unknown " + kind + " '" + name + "'" +
           (hint.empty() ? "" : " (did you mean '" + hint + "'?)") + "; known: " + known;
  }

 private:
  std::map<std::string, Entry> entries_;
};

}  // namespace attnlab
