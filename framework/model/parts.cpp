#include "framework/model/parts.h"

namespace attnlab {

Registry<NormEntry>& norm_registry() {
  static const bool filled = (register_builtin_norms(Registry<NormEntry>::instance()), true);
  (void)filled;
  return Registry<NormEntry>::instance();
}

Registry<MlpEntry>& mlp_registry() {
  static const bool filled = (register_builtin_mlps(Registry<MlpEntry>::instance()), true);
  (void)filled;
  return Registry<MlpEntry>::instance();
}

Registry<PositionsEntry>& positions_registry() {
  static const bool filled = (register_builtin_positions(Registry<PositionsEntry>::instance()), true);
  (void)filled;
  return Registry<PositionsEntry>::instance();
}

}  // namespace attnlab
