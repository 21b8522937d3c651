// The mixers the generic contract tests (context parallelism, packed documents) run over: every
// registered mixer at its defaults, plus the option sets that take a different code path, so a
// test over "every mixer" also covers e.g. Hedgehog's sliding-window hybrid.
#pragma once
#include <cctype>
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

/// The label as a GoogleTest name (letters, digits and underscores).
inline std::string variant_test_name(const MixerVariant& v) {
  std::string name = v.label();
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
}

inline std::vector<MixerVariant> contract_variants() {
  std::vector<MixerVariant> out;
  for (const std::string& name : MixerRegistry::instance().names()) out.push_back({name});
  // The window hybrid: shorter than a context-parallel shard of the tests (a halo from one rank)
  // and longer (a halo spanning several ranks).
  out.push_back({"hedgehog", "{window: 5}"});
  out.push_back({"hedgehog", "{window: 30}"});
  // Windows shorter than the test sequences (the decode cache evicts), with and without sinks.
  out.push_back({"swa", "{window: 6}"});
  out.push_back({"swa", "{window: 9, sinks: 3, kv_heads: 2}"});
  // Window and sinks both longer than a context-parallel shard of the tests (halo and sinks
  // gathered from several ranks).
  out.push_back({"swa", "{window: 30, sinks: 25}"});
  // Sigmoid without its stabilisers, with LayerScale.
  out.push_back({"sigmoid", "{qk_norm: false, hybrid_norm: false, layer_scale: 0.1}"});
  // A keep window shorter than the test sequences, so the dynamic mask acts.
  out.push_back({"dma", "{keep_window: 5, kv_heads: 2, bias_form: linear}"});
  // Routing without shared heads, and the parameter-free query-norm router.
  out.push_back({"moh", "{shared_heads: 0, top_k: 2}"});
  out.push_back({"moh", "{shared_heads: 1, top_k: 2, router: query_norm}"});
  // A selection budget below the test sequences (blocks of 4, 3 per query), GQA.
  out.push_back({"ssa", "{block_size: 4, block_count: 3, kv_heads: 2}"});
  // Grassmann with an offset longer than a context-parallel shard of the tests (the halo then
  // spans several ranks) and the clamp normalisation.
  out.push_back({"grassmann", "{rank: 6, offsets: [1, 5, 30], norm: clamp}"});
  // Titans: several chunks per test sequence (and, under context parallelism, shards that start
  // inside a chunk), each architecture, read-before-write, no conv, a deeper SiLU memory.
  out.push_back({"titans", "{chunk: 4}"});
  out.push_back({"titans", "{architecture: mag, chunk: 4, window: 6}"});
  out.push_back({"titans", "{architecture: mal, chunk: 5, read: before, memory_layers: 1, window: 7}"});
  out.push_back({"titans", "{chunk: 3, conv: 1, activation: silu, memory_layers: 3}"});
  // Persistent tokens (sinks of the window), and mac: segments shorter than the test sequences,
  // chunks that straddle them, with and without P.
  out.push_back({"titans", "{architecture: mag, chunk: 4, window: 5, persistent: 3}"});
  out.push_back({"titans", "{architecture: mac, segment: 8, chunk: 3, persistent: 2}"});
  out.push_back({"titans", "{architecture: mac, segment: 5, chunk: 5, conv: 1, read: before}"});
  return out;
}

}  // namespace attnlab::testing
