// Trainer: one run of `attnlab train`. step() reads top to bottom: micro-batches -> forward ->
// loss (+ aux losses) -> backward -> finite check -> clip -> AdamW -> schedule. Policy lives in
// the small should_* predicates. Rank 0 alone writes the run folder.
#pragma once
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "framework/config/run_config.h"
#include "framework/data/source.h"
#include "framework/dist/world.h"
#include "framework/log/metrics.h"
#include "framework/model/language_model.h"
#include "framework/train/adamw.h"
#include "framework/train/hooks.h"
#include "framework/train/optimizer.h"
#include "framework/train/data_parallel.h"
#include "framework/train/mesh.h"
#include "framework/util/run_lock.h"

namespace attnlab {

struct TrainerOptions {
  bool resume = false;
  bool write_outputs = true;  ///< false for benchmarks: no run folder, no checkpoints
  bool quiet = false;         ///< no progress lines
  std::shared_ptr<TrainingHooks> hooks = nullptr;  ///< null: a plain run (framework/train/hooks.h)
};

struct StepResult {
  double loss = 0, grad_norm = 0, lr = 0;
  bool skipped = false;
  /// Wall time of the phases (seconds): data+forward+backward, grad norm+clip, optimizer.
  double fwd_bwd_s = 0, clip_s = 0, optim_s = 0;
  /// Data parallel: seconds in the gradient and loss all-reduces (part of clip_s's phase).
  double comm_s = 0;
  /// The mixers' auxiliary losses by name (mean over micro-batches and ranks).
  std::map<std::string, double> aux;
};

class Trainer {
 public:
  Trainer(RunConfig cfg, World world, TrainerOptions opts);
  /// Trains to train.steps (or until SIGINT/SIGTERM, which saves first). Returns an exit code.
  int train();
  StepResult step();
  /// Mean validation loss over eval.batches batches. Its other values are in last_validation():
  /// `accuracy` on the answers of a task source (framework/data/source.h), and the hooks'.
  double evaluate();
  const std::map<std::string, double>& last_validation() const { return last_validation_; }
  void save();

  int64_t current_step() const { return step_; }
  const std::vector<double>& losses() const { return losses_; }
  LanguageModel& model() { return model_; }
  double flops_per_token() const { return flops_per_token_; }

  /// Set by the signal handler; checked between steps.
  static std::atomic<bool> stop_requested;
  /// True once train() has entered its loop; before that SIGINT/SIGTERM end the process.
  static std::atomic<bool> training;

 private:
  void prepare_run_dir();
  void resume_from_newest();
  /// Console output; a failed write (closed pipe) becomes a stop request.
  void say(const std::string& text);
  bool should_log(int64_t step) const;
  bool should_eval(int64_t step) const;
  bool should_save(int64_t step) const;
  void log_progress(const StepResult& r, double step_seconds, double elapsed);
  /// What one forward of this rank sees: inputs and targets [B, seq_len / cp] and the mixer
  /// context (kernel choice, packed documents and positions, the context-parallel group).
  struct Shard {
    at::Tensor inputs, targets;
    MixerContext ctx;
  };
  /// A batch [B, seq_len] -> this context-parallel rank's shard of it.
  Shard my_shard(const TokenBatch& batch, bool training) const;
  /// evaluate(), then its values to the metrics and the console (trainer_eval.cpp).
  void evaluate_and_log();
  /// One micro-batch's loss: the hooks', or cross entropy plus the mixers' aux losses.
  MicroBatchLoss micro_batch_loss(const Shard& batch);

  RunConfig cfg_;
  World world_;
  TrainerOptions opts_;
  c10::Device device_;
  LanguageModel model_{nullptr};
  // The communicator outlives what uses it (members are destroyed in reverse order): pending
  // gradient collectives must not outlive their process group.
  Mesh mesh_;
  std::unique_ptr<Communicator> comm_;  ///< only when world_size > 1
  std::unique_ptr<Communicator> cp_;    ///< this rank's context-parallel group (cp > 1)
  std::vector<CpStrategy> cp_preference_;
  std::unique_ptr<DataParallel> dp_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<DataSource> train_data_, val_data_;
  std::unique_ptr<RunLock> lock_;
  std::unique_ptr<MetricsSink> metrics_;
  int64_t step_ = 0, skipped_steps_ = 0;
  int64_t saved_step_ = -1;  ///< the step of the newest complete checkpoint of this process
  std::vector<double> losses_;
  std::map<std::string, double> last_validation_;
  double flops_per_token_ = 0, peak_flops_ = 0;
  int64_t tokens_per_step_ = 0;
  int64_t eot_ = -1;  ///< data.pack: documents: the tokenizer's EOT id
};

/// Installs SIGINT/SIGTERM handlers that set Trainer::stop_requested (once training; before,
/// the signal ends the process), and ignores SIGPIPE.
void install_stop_handlers();

}  // namespace attnlab
