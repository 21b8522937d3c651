// The trainer's side of the run folder: refusing before writing, resuming from the newest
// verified checkpoint with every state field checked against the config, and cleaning up what
// dead processes left (docs/checkpoints.md).
#include <fmt/format.h>

#include <filesystem>

#include "framework/checkpoint/checkpoint.h"
#include "framework/log/console.h"
#include "framework/log/run_logs.h"
#include "framework/train/setup.h"
#include "framework/train/trainer.h"
#include "framework/util/atomic_file.h"

namespace attnlab {
namespace {

// The saved counters must be the ones this config could have produced: every step consumes
// grad_accum micro-batches of batch_size samples, skipped or not.
void check_state_against_config(const CheckpointState& s, const RunConfig& cfg, int64_t world_size,
                                const std::string& file) {
  std::vector<std::string> errors;
  if (s.config_hash != cfg.model_hash(world_size))
    errors.push_back(fmt::format("config_hash {} is not this config's {}: the checkpoint was "
                                 "written by a different model, data, optimizer or training config; "
                                 "what may change on resume is listed in docs/checkpoints.md",
                                 s.config_hash, cfg.model_hash(world_size)));
  if (s.step > cfg.train.steps)
    errors.push_back(fmt::format("step {} is past train.steps {}; raise train.steps to continue",
                                 s.step, cfg.train.steps));
  // The cursor counts samples per rank; the job consumed cursor × world_size of them, which
  // must be step × the global batch (equal config hashes make the global batches equal).
  const int64_t per_step = cfg.train.batch_size * cfg.train.grad_accum * world_size;
  int64_t expected = 0, consumed = 0;
  if (__builtin_mul_overflow(s.step, per_step, &expected) ||
      __builtin_mul_overflow(s.data_cursor, s.world_size, &consumed) || consumed != expected)
    errors.push_back(fmt::format("data_cursor {} on {} ranks is not step {} x {} samples per step",
                                 s.data_cursor, s.world_size, s.step, per_step));
  if (s.seed != cfg.run.seed)
    errors.push_back(fmt::format("seed {} differs from run.seed {}: the data order would change",
                                 s.seed, cfg.run.seed));
  if (errors.empty()) return;
  std::vector<std::string> lines;
  for (const auto& e : errors) lines.push_back(file + ": " + e);
  throw ConfigError(lines);
}

}  // namespace

void Trainer::resume_from_newest() {
  NewestCheckpoint found = newest_checkpoint(cfg_.run_dir());  // throws if none verifies
  for (const auto& why : found.rejected) console_write(stderr, "warning: resume: skipping " + why + "\n");
  if (!found.checkpoint) {
    say(fmt::format("resume: no checkpoint in {}, starting fresh\n", cfg_.run_dir()));
    return;
  }
  Checkpoint& ck = *found.checkpoint;
  const std::string state_file = ck.dir + "/state.json";
  check_state_against_config(ck.state, cfg_, mesh_.dp, state_file);
  load_weights(model_, ck.model, ck.dir + "/model.safetensors");
  optimizer_->load_state(ck.optimizer.tensors, ck.state.optimizer_steps, ck.dir + "/optimizer.safetensors");
  step_ = saved_step_ = ck.state.step;
  skipped_steps_ = ck.state.skipped_steps;
  // Same global position at any world size (the check above makes the division exact).
  train_data_->cursor = ck.state.data_cursor * ck.state.world_size / mesh_.dp;
  if (ck.state.world_size != mesh_.dp)
    say(fmt::format("resume: written by {} data-parallel ranks, continuing on {} (the same global sample order)\n",
                    ck.state.world_size, mesh_.dp));
  // Newer folders that failed verification go out of the way of pruning and later resumes.
  if (opts_.write_outputs && world_.is_main())
    for (const std::string& dir : checkpoint_folders(cfg_.run_dir())) {
      if (dir == ck.dir) break;
      console_write(stderr, fmt::format("warning: resume: moved unverifiable {} to {}\n", dir,
                                        set_aside_checkpoint(dir)));
    }
  std::string note;
  if (ck.state.train_steps != cfg_.train.steps)
    note = fmt::format(" (train.steps {} -> {}: the lr schedule now ends at step {}; lr at step {} "
                       "moves from {:.3e} to {:.3e})",
                       ck.state.train_steps, cfg_.train.steps, cfg_.train.steps, step_ + 1,
                       learning_rate(cfg_.optim, step_, ck.state.train_steps),
                       learning_rate(cfg_.optim, step_, cfg_.train.steps));
  say(fmt::format("resume: {} at step {}{}\n", ck.dir, step_, note));
}

void Trainer::prepare_run_dir() {
  if (!world_.is_main()) return;
  const std::string dir = cfg_.run_dir();
  std::filesystem::create_directories(dir);
  // We hold the run lock, so these belong to dead processes.
  for (const auto& p : remove_checkpoint_leftovers(dir))
    console_write(stderr, "note: removed " + p + " left by an interrupted save\n");
  write_file_atomic(dir + "/config.yaml", cfg_.to_yaml());
  const TrimResult t = trim_run_logs(dir, step_);
  if (t.metrics_rows_dropped + t.events_dropped > 0)
    say(fmt::format("logs: dropped {} metrics rows and {} TensorBoard events past step {} "
                    "(written after the checkpoint by the interrupted run)\n",
                    t.metrics_rows_dropped, t.events_dropped, step_));
}

}  // namespace attnlab
