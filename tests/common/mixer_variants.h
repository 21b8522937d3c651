// The mixers the generic contract tests (context parallelism, packed documents) run over: every
// registered mixer at its defaults, plus the option sets that take a different code path, so a
// test over "every mixer" also covers e.g. Hedgehog's sliding-window hybrid.
#pragma once
#include <ostream>
#include <string>
#include <vector>

#include "framework/config/run_config.h"
#include "framework/model/mixer.h"

namespace attnlab::testing {

struct MixerVariant {
  std::string type;
  std::string options = "{}";  ///< YAML mapping over the defaults
  std::string label() const { return options == "{}" ? type : type + " " + options; }
  MixerSpec spec() const { return mixer_spec(type, options); }
};

/// How GoogleTest prints a variant (test names and parameters).
inline void PrintTo(const MixerVariant& v, std::ostream* os) { *os << v.label(); }

inline std::vector<MixerVariant> contract_variants() {
  std::vector<MixerVariant> out;
  for (const std::string& name : MixerRegistry::instance().names()) out.push_back({name});
  // The window hybrid: shorter than a context-parallel shard of the tests (a halo from one rank)
  // and longer (a halo spanning several ranks).
  out.push_back({"hedgehog", "{window: 5}"});
  out.push_back({"hedgehog", "{window: 30}"});
  return out;
}

}  // namespace attnlab::testing
