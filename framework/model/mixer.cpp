#include "framework/model/mixer.h"

#include <c10/util/Exception.h>

#include <algorithm>

#include "framework/dist/communicator.h"

namespace attnlab {

const char* to_string(CpStrategy s) {
  switch (s) {
    case CpStrategy::none: return "none";
    case CpStrategy::allgather_kv: return "allgather_kv";
    case CpStrategy::state_gather: return "state_gather";
    case CpStrategy::state_scan: return "state_scan";
    case CpStrategy::ring_lse: return "ring_lse";
    case CpStrategy::ring_sum: return "ring_sum";
    case CpStrategy::halo: return "halo";
    case CpStrategy::serial_state: return "serial_state";
    case CpStrategy::ulysses: return "ulysses";
  }
  return "?";
}

std::optional<CpStrategy> cp_strategy_named(const std::string& name) {
  for (int i = 0; i <= static_cast<int>(CpStrategy::ulysses); ++i)
    if (name == to_string(static_cast<CpStrategy>(i))) return static_cast<CpStrategy>(i);
  return std::nullopt;
}

CpStrategy choose_cp_strategy(const Mixer& mixer, const std::vector<CpStrategy>& preference, int64_t ranks) {
  const std::vector<CpStrategy> offered = mixer.cp_strategies();
  for (CpStrategy p : preference)
    if (std::find(offered.begin(), offered.end(), p) != offered.end() && mixer.cp_supports(p, ranks)) return p;
  for (CpStrategy s : offered)
    if (mixer.cp_supports(s, ranks)) return s;
  return CpStrategy::none;
}

void require_whole_sequence(const MixerContext& ctx, const char* who) {
  TORCH_CHECK(!ctx.documents.defined() && !(ctx.cp && ctx.cp->size() > 1), who,
              ": attention_weights takes whole sequences of one document");
}

}  // namespace attnlab
