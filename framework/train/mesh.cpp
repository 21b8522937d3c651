#include "framework/train/mesh.h"

#include <fmt/format.h>

#include <algorithm>

#include "framework/config/config_error.h"

namespace attnlab {
namespace {
std::string strategy_names(const std::vector<CpStrategy>& list) {
  std::string names;
  for (CpStrategy s : list) names += std::string(names.empty() ? "" : ", ") + to_string(s);
  return names.empty() ? "none" : names;
}
}  // namespace

void check_context_parallel(LanguageModelImpl& model, int64_t cp) {
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Mixer& m = *model.layers[i]->mixer;
    if (m.cp_strategies().empty())
      throw ConfigError({fmt::format("config: parallel.cp {}: layer {}'s mixer '{}' declares no context-parallel "
                                     "strategy (docs/parallelism.md lists each mixer's); use parallel.cp: 1",
                                     cp, i, model.layers[i]->mixer_type)});
    if (choose_cp_strategy(m, {}, cp) == CpStrategy::none)
      throw ConfigError({fmt::format("config: parallel.cp {}: none of layer {}'s mixer '{}' strategies ({}) works "
                                     "with {} ranks (docs/parallelism.md)",
                                     cp, i, model.layers[i]->mixer_type, strategy_names(m.cp_strategies()), cp)});
  }
}

std::string describe_cp_plan(LanguageModelImpl& model, const std::vector<CpStrategy>& preference, int64_t cp) {
  std::string chosen;
  for (auto& block : model.layers) {
    const std::string one = block->mixer_type + " " + to_string(choose_cp_strategy(*block->mixer, preference, cp));
    if (chosen.find(one) == std::string::npos) chosen += (chosen.empty() ? "" : ", ") + one;
  }
  return "layers: " + chosen;
}

std::vector<CpStrategy> cp_preference(const RunConfig& cfg, LanguageModelImpl& model) {
  std::vector<CpStrategy> out;
  const std::string& list = cfg.parallel.cp_strategy;
  if (list == "auto") return out;
  size_t begin = 0;
  while (begin <= list.size()) {
    const size_t end = std::min(list.find(',', begin), list.size());
    std::string name = list.substr(begin, end - begin);
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    const auto s = cp_strategy_named(name);
    if (!s || *s == CpStrategy::none)
      throw ConfigError({fmt::format("config: parallel.cp_strategy: unknown strategy '{}', expected auto or a "
                                     "comma-separated list of ulysses, allgather_kv, ring_lse, state_gather, state_scan", name)});
    bool used = false;
    std::string offers;
    for (size_t i = 0; i < model.layers.size(); ++i) {
      const auto offered = model.layers[i]->mixer->cp_strategies();
      used = used || std::find(offered.begin(), offered.end(), *s) != offered.end();
      offers += fmt::format("{}layer {} {}: {}", offers.empty() ? "" : "; ", i, model.layers[i]->mixer_type,
                            strategy_names(offered));
    }
    if (!used)
      throw ConfigError({fmt::format("config: parallel.cp_strategy: no layer's mixer implements '{}' ({})", name,
                                     offers)});
    out.push_back(*s);
    begin = end + 1;
  }
  return out;
}

Mesh make_mesh(const RunConfig& cfg, const World& world) {
  const ParallelConfig& p = cfg.parallel;
  Mesh m;
  m.cp = p.cp;
  if (world.world_size % p.cp != 0)
    throw ConfigError({fmt::format("config: parallel.cp {} does not divide the {} processes of the job", p.cp,
                                   world.world_size)});
  m.dp = p.dp == 0 ? world.world_size / p.cp : p.dp;
  if (m.dp * m.cp != world.world_size)
    throw ConfigError({fmt::format("config: parallel.dp {} x parallel.cp {} must equal the job's {} processes",
                                   m.dp, m.cp, world.world_size)});
  if (cfg.data.seq_len % m.cp != 0)
    throw ConfigError({fmt::format("config: data.seq_len {} must be a multiple of parallel.cp {} (equal shards)",
                                   cfg.data.seq_len, m.cp)});
  m.dp_rank = world.rank / m.cp;
  m.cp_rank = world.rank % m.cp;
  return m;
}

}  // namespace attnlab
