#include "framework/train/trainer.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <fmt/format.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <thread>

#include "framework/checkpoint/checkpoint.h"
#include "framework/dist/nccl_backend.h"
#include "framework/log/console.h"
#include "framework/model/documents.h"
#include "framework/train/gemm_peak.h"
#include "framework/train/setup.h"

namespace attnlab {

std::atomic<bool> Trainer::stop_requested{false};
std::atomic<bool> Trainer::training{false};

void install_stop_handlers() {
  // Before the loop there is nothing to save, and setup may be blocked (a rendezvous waiting
  // for its peers): the signal ends the process as it would by default.
  auto handler = [](int sig) {
    if (!Trainer::training) {
      std::signal(sig, SIG_DFL);
      std::raise(sig);
      return;
    }
    Trainer::stop_requested = true;
  };
  std::signal(SIGINT, handler);
  std::signal(SIGTERM, handler);
  ignore_sigpipe();
}

namespace {
std::string hms(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds));
  return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
}

}  // namespace

Trainer::Trainer(RunConfig cfg, World world, TrainerOptions opts)
    : cfg_(std::move(cfg)), world_(world), opts_(opts), device_(resolve_device(cfg_.train)) {
  check_thread_count(cfg_.train);
  if (!device_.is_cuda() && cfg_.train.threads > 0) at::set_num_threads(cfg_.train.threads);
  mesh_ = make_mesh(cfg_, world_);
  if (world_.world_size > 1 && device_.is_cuda()) {
    // One GPU per local rank (CUDA_VISIBLE_DEVICES may narrow what this process sees).
    const auto gpus = static_cast<int64_t>(torch::cuda::device_count());
    if (world_.local_rank >= gpus)
      throw ConfigError({fmt::format("LOCAL_RANK {} needs a GPU of its own, but this process sees {}",
                                     world_.local_rank, gpus)});
    device_ = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(world_.local_rank));
    select_cuda_device(static_cast<int>(world_.local_rank));
  }
  if (world_.world_size > 1) {
    CommOptions co;
    co.timeout = std::chrono::seconds(cfg_.parallel.timeout_s);
    co.backend = comm_backend(cfg_.parallel, device_);
    comm_ = std::make_unique<Communicator>(world_, co);
    dp_ = std::make_unique<DataParallel>(*comm_);
    dp_->check_same_config(cfg_.model_hash(mesh_.dp));
    if (mesh_.cp > 1) {  // the cp ranks of one data-parallel replica are consecutive
      std::vector<int64_t> ranks;
      for (int64_t c = 0; c < mesh_.cp; ++c) ranks.push_back(mesh_.dp_rank * mesh_.cp + c);
      cp_ = comm_->subgroup(ranks, "cp" + std::to_string(mesh_.dp_rank));
    }
  }
  model_ = build_model(cfg_, device_);
  if (opts_.hooks) opts_.hooks->prepare(model_);
  if (mesh_.cp > 1) check_context_parallel(*model_, mesh_.cp);  // before any data moves
  cp_preference_ = cp_preference(cfg_, *model_);
  NamedTensors trainable;  // what the hooks froze stays out of the optimizer (and its checkpoint)
  for (auto& [name, p] : named_parameters(model_))
    if (p.requires_grad()) trainable.emplace_back(name, p);
  if (trainable.empty()) throw ConfigError({"the model has no trainable parameters"});
  optimizer_ = make_optimizer(trainable, cfg_.optim, cfg_.parallel, comm_.get());
  // Rank 0 prepares the data (if needed) before the others open it.
  auto open_data = [&] {
    train_data_ = make_data_source(cfg_, "train", mesh_.dp_rank, mesh_.dp);
    // Built now so that a validation split shorter than one window fails before step 1.
    val_data_ = make_data_source(cfg_, "val");
  };
  if (comm_ && !world_.is_main()) comm_->barrier();
  open_data();
  if (comm_ && world_.is_main()) comm_->barrier();
  if (cfg_.data.pack == "documents") eot_ = make_tokenizer(cfg_.data)->eot_id();
  flops_per_token_ = model_->train_flops_per_token(cfg_.data.seq_len);
  // MFU against what this machine's GEMM reaches in the compute dtype (bf16 under CUDA autocast).
  peak_flops_ = measured_gemm_flops(device_, device_.is_cuda() && cfg_.train.dtype != "fp32" && cfg_.train.dtype != "fp64"
                                                  ? at::kBFloat16
                                                  : (cfg_.train.dtype == "fp64" ? at::kDouble : at::kFloat));
  tokens_per_step_ = cfg_.train.batch_size * cfg_.train.grad_accum * cfg_.data.seq_len * mesh_.dp;
  // Everything that can refuse the run (locks, checkpoints, resume checks) runs before
  // prepare_run_dir writes anything (trainer_run_dir.cpp).
  if (opts_.write_outputs && world_.is_main()) lock_ = std::make_unique<RunLock>(cfg_.run_dir());
  if (opts_.write_outputs && !opts_.resume && has_checkpoints(cfg_.run_dir()))
    throw ConfigError({fmt::format("{} already holds checkpoints: pass --resume to continue it, "
                                   "or choose another run.name", cfg_.run_dir())});
  if (opts_.resume) resume_from_newest();
  if (dp_) dp_->sync_parameters(model_->parameters());  // identical start, checked
  if (opts_.write_outputs) prepare_run_dir();
  const bool writer = opts_.write_outputs && world_.is_main();
  metrics_ = std::make_unique<MetricsSink>(writer ? cfg_.run_dir() : "", cfg_.log.tensorboard);
}

void Trainer::say(const std::string& text) {
  if (opts_.quiet || !world_.is_main()) return;
  if (!console_write(stdout, text)) stop_requested = true;
}

void Trainer::save() {
  if (!opts_.write_outputs || saved_step_ == step_) return;
  // Every rank takes part (ZeRO-1 gathers the moments); rank 0 writes.
  const NamedTensors moments = optimizer_->state(world_.is_main());
  if (!world_.is_main()) {  // rank 0 writes; the others wait until the checkpoint is complete
    if (comm_) comm_->barrier();
    saved_step_ = step_;
    return;
  }
  CheckpointState state;
  state.step = step_;
  state.optimizer_steps = optimizer_->steps();
  state.skipped_steps = skipped_steps_;
  state.data_cursor = train_data_->cursor;
  state.train_steps = cfg_.train.steps;
  state.seed = cfg_.run.seed;
  state.world_size = mesh_.dp;  // data-parallel replicas: what the sample order depends on
  state.config_hash = cfg_.model_hash(mesh_.dp);
  state.attnlab_version = ATTNLAB_VERSION;
  save_checkpoint(cfg_.run_dir(), named_parameters(model_), moments, state,
                  cfg_.checkpoint.keep);
  saved_step_ = step_;
  if (comm_) comm_->barrier();
}

bool Trainer::should_log(int64_t s) const { return s % cfg_.log.every == 0 || s == cfg_.train.steps; }
bool Trainer::should_eval(int64_t s) const {
  return (cfg_.eval.every > 0 && s % cfg_.eval.every == 0) || s == cfg_.train.steps;
}
bool Trainer::should_save(int64_t s) const {
  return (cfg_.checkpoint.every > 0 && s % cfg_.checkpoint.every == 0) || s == cfg_.train.steps;
}

StepResult Trainer::step() {
  StepResult r;
  using clock = std::chrono::steady_clock;
  auto seconds_since = [](clock::time_point t) {
    return std::chrono::duration<double>(clock::now() - t).count();
  };
  auto t0 = clock::now();
  r.lr = learning_rate(cfg_.optim, step_, cfg_.train.steps);
  const bool autocast = device_.is_cuda() && (cfg_.train.dtype == "auto" || cfg_.train.dtype == "bf16");
  at::autocast::set_autocast_enabled(at::kCUDA, autocast);
  if (autocast) at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  const int64_t accum = cfg_.train.grad_accum;
  std::vector<at::Tensor> micro_losses;  // stay on the device until the one sync below
  std::vector<std::string> aux_names;
  std::vector<at::Tensor> aux_values;    // per name, summed over micro-batches
  for (int64_t m = 0; m < accum; ++m) {
    const Shard batch = my_shard(train_data_->next(cfg_.train.batch_size).to(device_), /*training=*/true);
    MicroBatchLoss micro = micro_batch_loss(batch);
    const at::Tensor& loss = micro.loss;
    at::Tensor total = loss;
    for (const AuxLoss& a : micro.terms) {
      if (a.weight != 0) total = total + a.weight * a.value;
      auto at = std::find(aux_names.begin(), aux_names.end(), a.name);
      const at::Tensor v = a.value.detach().to(at::kDouble).reshape({1}) / static_cast<double>(accum);
      if (at == aux_names.end()) aux_names.push_back(a.name), aux_values.push_back(v);
      else aux_values[at - aux_names.begin()] += v;
    }
    total = total / static_cast<double>(accum);
    optimizer_->before_backward(m == accum - 1);  // data parallel: the last one is reduced
    total.backward();
    micro_losses.push_back(loss.detach().to(at::kDouble).reshape({1}));
  }
  if (autocast) at::autocast::clear_cache();
  r.fwd_bwd_s = seconds_since(t0);
  t0 = clock::now();
  // Data parallel: the gradients are the mean over ranks before the norm, so every rank clips
  // and steps identically (docs/parallelism.md). Only the wait is exposed: buckets left during
  // backward.
  optimizer_->after_backward();
  at::Tensor gnorm = optimizer_->grad_norm();
  micro_losses.insert(micro_losses.end(), aux_values.begin(), aux_values.end());
  if (dp_) {
    // The logged losses are global means; a non-finite loss on any rank makes every rank skip.
    at::Tensor losses = at::cat(micro_losses);
    const auto c0 = clock::now();
    dp_->mean(losses);
    r.comm_s += seconds_since(c0);
    micro_losses = {losses};
  }
  micro_losses.push_back(gnorm.to(at::kDouble));
  const at::Tensor host = at::cat(micro_losses).to(at::kCPU, at::kDouble);  // the step's one sync
  const double* v = host.const_data_ptr<double>();
  int64_t bad_micro = -1;
  for (int64_t m = 0; m < accum; ++m) {
    if (!std::isfinite(v[m]) && bad_micro < 0) bad_micro = m;
    r.loss += v[m] / static_cast<double>(accum);
  }
  for (size_t i = 0; i < aux_names.size(); ++i) r.aux[aux_names[i]] = v[accum + static_cast<int64_t>(i)];
  r.grad_norm = v[accum + static_cast<int64_t>(aux_names.size())];
  const bool finite = std::isfinite(r.loss) && std::isfinite(r.grad_norm);
  if (!finite) {
    const int64_t first_cursor = train_data_->cursor - accum * cfg_.train.batch_size;
    const std::string what = fmt::format(
        "non-finite {} at step {} (micro-batch {}, data cursor {}, batch size {})",
        std::isfinite(r.loss) ? "gradient" : "loss", step_ + 1, std::max<int64_t>(bad_micro, 0),
        first_cursor + std::max<int64_t>(bad_micro, 0) * cfg_.train.batch_size,
        cfg_.train.batch_size);
    optimizer_->zero_grad();
    r.comm_s += optimizer_->take_comm_seconds();
    if (cfg_.train.nan_policy == "stop") throw std::runtime_error(what + "; stopping (nan_policy: stop)");
    console_write(stderr, fmt::format("warning: {}; step skipped\n", what));
    ++skipped_steps_;
    r.skipped = true;
  } else {
    if (cfg_.train.clip > 0 && r.grad_norm > cfg_.train.clip)
      optimizer_->scale_grads(cfg_.train.clip / (r.grad_norm + 1e-6));
    r.clip_s = seconds_since(t0);
    t0 = clock::now();
    optimizer_->step(r.lr);
    optimizer_->zero_grad();
    r.optim_s = seconds_since(t0);
    r.comm_s += optimizer_->take_comm_seconds();
  }
  ++step_;
  losses_.push_back(r.loss);
  return r;
}

MicroBatchLoss Trainer::micro_batch_loss(const Shard& batch) {
  if (opts_.hooks) {
    opts_.hooks->before_forward(model_);
    if (auto own = opts_.hooks->loss(model_, batch.inputs, batch.targets, batch.ctx)) return *own;
  }
  at::Tensor logits = model_->forward(batch.inputs, batch.ctx);  // [B, T/cp, V]
  MicroBatchLoss out;
  out.loss = at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), batch.targets.reshape({-1}));
  out.terms = model_->aux_losses();
  return out;
}

Trainer::Shard Trainer::my_shard(const TokenBatch& batch, bool training) const {
  const int64_t T = batch.inputs.size(1);
  Shard out;
  out.ctx.training = training;
  out.ctx.kernel = cfg_.train.kernel;
  const at::Tensor &inputs = batch.inputs, &targets = batch.targets;
  // Documents and positions come from the whole window, so that ids and in-document positions
  // agree across the context-parallel shards of one sequence.
  // Without documents a shard's positions follow from its rank (framework/model/token_positions.h).
  if (eot_ >= 0) {
    out.ctx.documents = documents_from_eot(inputs, eot_);
    out.ctx.positions = positions_in_documents(out.ctx.documents);
  }
  auto mine = [&](const at::Tensor& x) {  // tokens S·r .. S·(r+1) of this context-parallel rank
    const int64_t S = T / mesh_.cp;
    return x.defined() && mesh_.cp > 1 ? x.narrow(1, mesh_.cp_rank * S, S) : x;
  };
  out.inputs = mine(inputs), out.targets = mine(targets);
  out.ctx.documents = mine(out.ctx.documents), out.ctx.positions = mine(out.ctx.positions);
  if (cp_) out.ctx.cp = cp_.get(), out.ctx.cp_preference = cp_preference_;
  return out;
}

void Trainer::log_progress(const StepResult& r, double step_seconds, double elapsed) {
  const double tok_s = tokens_per_step_ / step_seconds;
  const double mfu = tok_s * flops_per_token_ / peak_flops_;
  const double eta = step_seconds * static_cast<double>(cfg_.train.steps - step_);
  std::map<std::string, double> values = {{"train/loss", r.loss}, {"train/lr", r.lr},
                                          {"train/grad_norm", r.grad_norm}, {"perf/tokens_per_s", tok_s},
                                          {"perf/mfu", mfu}};
  for (const auto& [name, value] : r.aux) values["train/aux/" + name] = value;
  std::string ranks;
  if (dp_) {
    // Stragglers show: the slowest rank's step time, and the all-reduce share of the step
    // (every rank logs at the same steps, so this collective lines up).
    at::Tensor worst = at::tensor({step_seconds, r.comm_s / std::max(step_seconds, 1e-9)}, at::kDouble);
    dp_->comm().all_reduce(worst, ReduceOp::max);
    const double slowest = worst[0].item<double>(), comm_share = worst[1].item<double>();
    values["perf/slowest_rank_step_s"] = slowest;
    values["perf/allreduce_fraction"] = comm_share;
    ranks = fmt::format(" | slowest rank {:.0f} ms/step, all-reduce {:.0f}%", 1e3 * slowest, 100 * comm_share);
  }
  metrics_->log(step_, values);
  say(fmt::format("step {:>{}}/{} | loss {:.4f} | lr {:.2e} | gnorm {:.3f} | {:.0f} tok/s | MFU {:.2f}% "
             "| {} elapsed | ETA {}{}{}\n",
             step_, std::to_string(cfg_.train.steps).size(), cfg_.train.steps, r.loss, r.lr,
             r.grad_norm, tok_s, 100 * mfu, hms(elapsed), hms(eta), ranks, r.skipped ? " | SKIPPED" : ""));
}

int Trainer::train() {
  int64_t trainable = 0;
  for (const auto& p : model_->parameters()) trainable += p.requires_grad() ? p.numel() : 0;
  const std::string frozen = trainable == model_->num_parameters()
                                 ? ""
                                 : fmt::format(" ({:.3f}M trainable)", trainable / 1e6);
  say(fmt::format("model: {} layers, {:.2f}M parameters{}, {:.1f} MFLOP/token (fwd+bwd); device {} (GEMM {:.1f} "
                  "GFLOP/s measured, the MFU denominator){}\n",
                  cfg_.model.layers, model_->num_parameters() / 1e6, frozen, flops_per_token_ / 1e6,
                  device_.str(), peak_flops_ / 1e9,
                  dp_ ? fmt::format("; data parallel: {} ranks (dp {}, cp {}, zero {}) over {} (launched by {})",
                                    world_.world_size, mesh_.dp, mesh_.cp, cfg_.parallel.zero,
                                    comm_->backend(), world_.launcher)
                      : ""));
  if (mesh_.cp > 1)
    say(fmt::format("context parallel: {} ranks per sequence of {} tokens; {}\n", mesh_.cp, cfg_.data.seq_len,
                    describe_cp_plan(*model_, cp_preference_, mesh_.cp)));
  say(fmt::format("optimizer: AdamW state {:.2f} MB on this rank{}{}\n", optimizer_->state_bytes() / 1e6,
                  dp_ && cfg_.parallel.zero == 1 ? fmt::format(" (ZeRO-1: about 1/{} of the whole)", world_.world_size)
                                                 : "",
                  dp_ ? fmt::format("; gradients in {} buckets of <= {} MB", optimizer_->buckets(), cfg_.parallel.bucket_mb)
                      : ""));
  model_->train();
  training = true;  // from here a signal checkpoints and stops
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  auto window_start = start;
  int64_t window_steps = 0;
  while (step_ < cfg_.train.steps) {
    // A stop on any rank (a signal, a closed pipe on rank 0) stops all of them at the same step:
    // the agreed value decides, never the flag read again (a signal may land in between).
    const bool stop = dp_ ? dp_->any(stop_requested) : stop_requested.load();
    if (stop) {
      save();
      say(fmt::format("interrupted: saved a checkpoint at step {} in {}\n", step_, cfg_.run_dir()));
      return 0;
    }
    StepResult r = step();
    ++window_steps;
    if (should_log(step_)) {
      const auto now = clock::now();
      const double dt = std::chrono::duration<double>(now - window_start).count() / window_steps;
      log_progress(r, dt, std::chrono::duration<double>(now - start).count());
      window_start = now, window_steps = 0;
    }
    if (should_eval(step_)) {
      evaluate_and_log();
      model_->train();
    }
    if (should_save(step_)) save();
  }
  return 0;
}

}  // namespace attnlab
