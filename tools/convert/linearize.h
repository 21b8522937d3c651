// `attnlab train RECIPE` for a recipe with a `convert:` section (docs/conversion.md,
// "Linearizing"): a softmax teacher's layers replaced by a linear (or any takeover-capable)
// mixer, trained in two stages, each a run folder of its own under the run:
//   <run>/stage1-transfer  attention transfer (the new parameters only, per-layer output MSE)
//   <run>/stage2-lora      LoRA on the mixers' projections, next-token loss
// then the adapters merged and the student written to <run> itself (config.yaml, checkpoint,
// conversion.json), a run folder that eval, generate and train --resume accept. Re-running skips
// finished stages; an interrupted stage continues with --resume.
#pragma once
#include <string>
#include <vector>

namespace attnlab::convert {

/// Whether the recipe (after extends and overrides) has a `convert:` section.
bool is_linearize_recipe(const std::string& recipe, const std::vector<std::string>& overrides);

/// Runs the linearization; returns the process exit code.
int linearize(const std::string& recipe, const std::vector<std::string>& overrides, bool resume);

}  // namespace attnlab::convert
