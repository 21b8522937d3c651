#include "tools/convert/run_folder.h"

#include "framework/checkpoint/checkpoint.h"
#include "framework/train/optimizer.h"
#include "framework/util/atomic_file.h"

namespace attnlab::convert {

void write_weights_as_run(const std::string& dir, const NamedTensors& params, const RunConfig& cfg) {
  const NamedTensors moments = make_optimizer(params, cfg.optim, cfg.parallel, nullptr)->state();
  CheckpointState state;
  state.train_steps = cfg.train.steps, state.seed = cfg.run.seed, state.world_size = 1;
  state.config_hash = cfg.model_hash(1), state.attnlab_version = ATTNLAB_VERSION;
  save_checkpoint(dir, params, moments, state, cfg.checkpoint.keep);
  write_file_atomic(dir + "/config.yaml", cfg.to_yaml());
}

}  // namespace attnlab::convert
