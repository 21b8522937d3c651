#include "framework/train/trainer.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/stack.h>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <thread>

#include "framework/checkpoint/checkpoint.h"
#include "framework/train/setup.h"
#include "framework/util/atomic_file.h"

namespace fs = std::filesystem;

namespace attnlab {

std::atomic<bool> Trainer::stop_requested{false};

void install_stop_handlers() {
  auto handler = [](int) { Trainer::stop_requested = true; };
  std::signal(SIGINT, handler);
  std::signal(SIGTERM, handler);
}

namespace {
std::string hms(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds));
  return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
}

// Rough peak for the MFU column: H100 dense bf16 on CUDA; on CPU, cores x 2.5 GHz x 32 fp32
// FLOP/cycle (two 8-wide FMA units). An estimate, labelled as such in docs/benchmarks.md.
double peak_flops(c10::Device d) {
  if (d.is_cuda()) return 989e12;
  return std::thread::hardware_concurrency() * 2.5e9 * 32;
}
}  // namespace

Trainer::Trainer(RunConfig cfg, World world, TrainerOptions opts)
    : cfg_(std::move(cfg)), world_(world), opts_(opts), device_(resolve_device(cfg_.train)) {
  if (!device_.is_cuda() && cfg_.train.threads > 0) at::set_num_threads(cfg_.train.threads);
  model_ = build_model(cfg_, device_);
  optimizer_ = std::make_unique<AdamW>(named_parameters(model_), cfg_.optim);
  train_data_ = std::make_unique<BatchSampler>(open_split(cfg_, "train"), cfg_.data.seq_len,
                                               cfg_.run.seed, world_.rank, world_.world_size);
  val_stream_ = open_split(cfg_, "val");
  flops_per_token_ = model_->train_flops_per_token(cfg_.data.seq_len);
  peak_flops_ = peak_flops(device_);
  tokens_per_step_ = cfg_.train.batch_size * cfg_.train.grad_accum * cfg_.data.seq_len *
                     world_.world_size;
  if (opts_.write_outputs) prepare_run_dir();
  if (opts_.resume) resume_from_latest();
  const bool writer = opts_.write_outputs && world_.is_main();
  metrics_ = std::make_unique<MetricsSink>(writer ? cfg_.run_dir() : "", cfg_.log.tensorboard);
}

void Trainer::prepare_run_dir() {
  const std::string dir = cfg_.run_dir();
  if (!opts_.resume && latest_checkpoint(dir))
    throw ConfigError({fmt::format("{} already holds checkpoints: pass --resume to continue it, "
                                   "or choose another run.name", dir)});
  if (!world_.is_main()) return;
  fs::create_directories(dir);
  write_file_atomic(dir + "/config.yaml", cfg_.to_yaml());
}

void Trainer::resume_from_latest() {
  auto latest = latest_checkpoint(cfg_.run_dir());
  if (!latest) {
    if (!opts_.quiet) fmt::print("resume: no checkpoint in {}, starting fresh\n", cfg_.run_dir());
    return;
  }
  Checkpoint ck = load_checkpoint(*latest);
  const std::string hash = ck.state.value("config_hash", "");
  if (hash != cfg_.model_hash())
    throw ConfigError({fmt::format("{}: was written by a different model/data/optimizer config "
                                   "(hash {} vs {}); only run.* and train.steps may change on resume",
                                   *latest, hash, cfg_.model_hash())});
  load_weights(model_, ck.model, ck.dir + "/model.safetensors");
  step_ = ck.state.at("step").get<int64_t>();
  optimizer_->load_state(ck.optimizer.tensors, ck.state.at("optimizer_steps").get<int64_t>());
  train_data_->cursor = ck.state.at("data_cursor").get<int64_t>();
  skipped_steps_ = ck.state.value("skipped_steps", 0);
  if (!opts_.quiet) fmt::print("resume: {} at step {}\n", ck.dir, step_);
}

void Trainer::save() {
  if (!opts_.write_outputs || !world_.is_main()) return;
  nlohmann::json state = {{"step", step_},
                          {"optimizer_steps", optimizer_->steps()},
                          {"data_cursor", train_data_->cursor},
                          {"skipped_steps", skipped_steps_},
                          {"config_hash", cfg_.model_hash()},
                          {"seed", cfg_.run.seed},
                          {"attnlab_version", ATTNLAB_VERSION}};
  save_checkpoint(cfg_.run_dir(), step_, named_parameters(model_), optimizer_->state(), state,
                  cfg_.checkpoint.keep);
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
  const bool autocast = device_.is_cuda() && cfg_.train.dtype != "fp32";
  at::autocast::set_autocast_enabled(at::kCUDA, autocast);
  if (autocast) at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  MixerContext ctx{/*training=*/true, cfg_.train.kernel};
  const int64_t accum = cfg_.train.grad_accum;
  int64_t bad_micro = -1, bad_cursor = 0;
  for (int64_t m = 0; m < accum; ++m) {
    const int64_t cursor = train_data_->cursor;
    at::Tensor batch = train_data_->next(cfg_.train.batch_size).to(device_);  // [B, T+1]
    at::Tensor inputs = batch.narrow(1, 0, cfg_.data.seq_len);
    at::Tensor targets = batch.narrow(1, 1, cfg_.data.seq_len);
    at::Tensor logits = model_->forward(inputs, ctx);  // [B, T, V] fp32
    at::Tensor loss = at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}),
                                             targets.reshape({-1}));
    at::Tensor total = (loss + model_->aux_loss()) / static_cast<double>(accum);
    total.backward();
    const double l = loss.item<double>();
    if (!std::isfinite(l) && bad_micro < 0) bad_micro = m, bad_cursor = cursor;
    r.loss += l / accum;
  }
  if (autocast) at::autocast::clear_cache();
  r.fwd_bwd_s = seconds_since(t0);
  t0 = clock::now();
  // Global grad norm in fp32; clip by scaling every gradient.
  double sq = 0;
  const std::vector<at::Tensor> params = model_->parameters();
  for (const auto& p : params)
    if (p.grad().defined()) sq += p.grad().to(at::kFloat).pow(2).sum().item<double>();
  r.grad_norm = std::sqrt(sq);
  const bool finite = std::isfinite(r.loss) && std::isfinite(r.grad_norm);
  if (!finite) {
    const std::string what = fmt::format(
        "non-finite {} at step {} (micro-batch {}, data cursor {}, batch size {})",
        std::isfinite(r.loss) ? "gradient" : "loss", step_ + 1, std::max<int64_t>(bad_micro, 0),
        bad_micro >= 0 ? bad_cursor : train_data_->cursor - cfg_.train.batch_size,
        cfg_.train.batch_size);
    optimizer_->zero_grad();
    if (cfg_.train.nan_policy == "stop") throw std::runtime_error(what + "; stopping (nan_policy: stop)");
    fmt::print(stderr, "warning: {}; step skipped\n", what);
    ++skipped_steps_;
    r.skipped = true;
  } else {
    if (cfg_.train.clip > 0 && r.grad_norm > cfg_.train.clip) {
      at::NoGradGuard no_grad;
      const double scale = cfg_.train.clip / (r.grad_norm + 1e-6);
      for (const auto& p : params)
        if (p.grad().defined()) p.grad().mul_(scale);
    }
    r.clip_s = seconds_since(t0);
    t0 = clock::now();
    optimizer_->step(r.lr);
    optimizer_->zero_grad();
    r.optim_s = seconds_since(t0);
  }
  ++step_;
  losses_.push_back(r.loss);
  return r;
}

double Trainer::evaluate() {
  at::NoGradGuard no_grad;
  BatchSampler val(val_stream_, cfg_.data.seq_len, cfg_.run.seed);
  MixerContext ctx{/*training=*/false, cfg_.train.kernel};
  double sum = 0;
  for (int64_t b = 0; b < cfg_.eval.batches; ++b) {
    at::Tensor batch = val.sequential(b * cfg_.train.batch_size, cfg_.train.batch_size).to(device_);
    at::Tensor logits = model_->forward(batch.narrow(1, 0, cfg_.data.seq_len), ctx);
    sum += at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}),
                                  batch.narrow(1, 1, cfg_.data.seq_len).reshape({-1}))
               .item<double>();
  }
  return sum / static_cast<double>(cfg_.eval.batches);
}

void Trainer::log_progress(const StepResult& r, double step_seconds, double elapsed) {
  const double tok_s = tokens_per_step_ / step_seconds;
  const double mfu = tok_s * flops_per_token_ / peak_flops_;
  const double eta = step_seconds * static_cast<double>(cfg_.train.steps - step_);
  metrics_->log(step_, {{"train/loss", r.loss}, {"train/lr", r.lr}, {"train/grad_norm", r.grad_norm},
                        {"perf/tokens_per_s", tok_s}, {"perf/mfu", mfu}});
  if (opts_.quiet || !world_.is_main()) return;
  fmt::print("step {:>{}}/{} | loss {:.4f} | lr {:.2e} | gnorm {:.3f} | {:.0f} tok/s | MFU {:.2f}% "
             "| {} elapsed | ETA {}{}\n",
             step_, std::to_string(cfg_.train.steps).size(), cfg_.train.steps, r.loss, r.lr,
             r.grad_norm, tok_s, 100 * mfu, hms(elapsed), hms(eta), r.skipped ? " | SKIPPED" : "");
  std::fflush(stdout);
}

int Trainer::train() {
  if (world_.is_main() && !opts_.quiet)
    fmt::print("model: {} layers, {:.2f}M parameters, {:.1f} MFLOP/token (fwd+bwd); device {}\n",
               cfg_.model.layers, model_->num_parameters() / 1e6, flops_per_token_ / 1e6,
               device_.str());
  model_->train();
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  auto window_start = start;
  int64_t window_steps = 0;
  while (step_ < cfg_.train.steps) {
    if (stop_requested) {
      save();
      fmt::print("interrupted: saved a checkpoint at step {} in {}\n", step_, cfg_.run_dir());
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
      const double vl = evaluate();
      metrics_->log(step_, {{"val/loss", vl}, {"val/perplexity", std::exp(vl)}});
      if (world_.is_main() && !opts_.quiet)
        fmt::print("eval step {} | val loss {:.4f} | val ppl {:.2f}\n", step_, vl, std::exp(vl));
      model_->train();
    }
    if (should_save(step_)) save();
  }
  return 0;
}

}  // namespace attnlab
