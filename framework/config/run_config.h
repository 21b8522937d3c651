// RunConfig: the typed form of a recipe. Each section lists its fields once in visit(); see
// options.h for how that one list gives parsing, YAML output and documentation.
#pragma once
#include <string>
#include <vector>

#include "framework/config/options.h"
#include "framework/data/mqar.h"
#include "framework/model/layouts.h"
#include "framework/model/mixer.h"
#include "framework/model/parts.h"

namespace attnlab {

struct RunSection {
  std::string name = "default";  ///< run directory name under `dir`
  std::string dir = "runs";
  int64_t seed = 1234;
  template <class V> void visit(V& v) {
    v("name", name, "run name; the run directory is <dir>/<name>");
    v("dir", dir, "parent folder of run directories");
    v("seed", seed, "seed for weights and data order", Bounds{0, 1e18});
  }
};

/// How each block is assembled (docs/model.md, "Blocks as data"); every name is a registered part.
struct BlockConfig {
  std::string layout = "pre_norm";
  std::string norm = "rmsnorm";
  std::string mlp = "swiglu";
  bool bias = false;            ///< biases in the MLP's linears
  bool mixer_residual = true;   ///< x + mixer(...); false: the mixer's output replaces x
  template <class V> void visit(V& v) {
    v("layout", layout, "where the norms and residuals sit around the mixer and the MLP",
      OneOf{layout_registry().names()});
    v("norm", norm, "the block's norms (and the final one)", OneOf{norm_registry().names()});
    v("mlp", mlp, "the channel MLP", OneOf{mlp_registry().names()});
    v("bias", bias, "biases in the MLP's linear layers (they start at zero)");
    v("mixer_residual", mixer_residual,
      "add the mixer's output to its input; false for mixers that blend their input in themselves");
  }
};

struct ModelConfig {
  int64_t vocab_size = 320;     ///< >= tokenizer vocabulary; rounded up for matmul efficiency
  int64_t dim = 256;
  int64_t layers = 4;
  int64_t mlp_hidden = 0;       ///< 0: swiglu round(8/3 * dim) to a multiple of 32, else 4 * dim
  double norm_eps = 1e-5;
  bool tie_embeddings = true;
  int64_t max_seq_len = 1024;
  double init_std = 0.02;
  std::string positions = "none";
  BlockConfig block;
  /// Layer i uses pattern[i % pattern.size()]; set from `mixer` alone when `pattern` is absent.
  std::vector<MixerSpec> pattern;

  template <class V> void visit(V& v) {
    v("vocab_size", vocab_size, "embedding rows; must cover the tokenizer", Bounds{2, 1e7});
    v("dim", dim, "model width D", Bounds{8, 65536});
    v("layers", layers, "number of blocks", Bounds{1, 1024});
    v("mlp_hidden", mlp_hidden, "MLP hidden width; 0 = swiglu: 8/3*dim rounded to 32, others: 4*dim",
      Bounds{0, 1e6});
    v("norm_eps", norm_eps, "epsilon of every block norm", Bounds{0, 1});
    v("tie_embeddings", tie_embeddings, "share the embedding and output matrices");
    v("max_seq_len", max_seq_len, "longest sequence the model accepts", Bounds{1, 1e8});
    v("init_std", init_std, "std of the normal weight init", Bounds{0, 10});
    v("positions", positions, "positional embedding added to the tokens' (RoPE lives in the mixers)",
      OneOf{positions_registry().names()});
    v.section("block", block, "the block's layout and parts");
  }
  int64_t resolved_mlp_hidden() const;
  /// The facts every part is built from.
  PartShape part_shape() const;
};

struct DataConfig {
  std::string source = "shards";
  std::string dir = "data/fortunes-byte";  ///< folder with train_*.bin / val_*.bin shards
  std::string prepare_from = "";           ///< text file/folder to shard into `dir` if empty
  std::string tokenizer = "byte";
  std::string tokenizer_path = "";
  int64_t seq_len = 256;
  double val_fraction = 0.05;
  std::string pack = "none";  ///< documents: no information crosses an EOT (docs/data.md)
  MqarConfig mqar;
  template <class V> void visit(V& v) {
    v("source", source, "shards: token shards in `dir`; mqar: Zoology's associative recall, "
      "generated from run.seed (docs/data.md)", OneOf{{"shards", "mqar"}});
    v("dir", dir, "folder of llm.c-format token shards (train_*.bin, val_*.bin)");
    v("prepare_from", prepare_from, "text file or folder tokenized into `dir` on first use");
    v("tokenizer", tokenizer, "tokenizer used by prepare and generate",
      OneOf{{"byte", "gpt2", "sentencepiece"}});
    v("tokenizer_path", tokenizer_path, "gpt2: folder with vocab.json+merges.txt; sp: .model");
    v("seq_len", seq_len, "training context length", Bounds{1, 1e8});
    v("val_fraction", val_fraction, "share of documents held out for validation", Bounds{0, 0.5});
    v("pack", pack, "none: windows cross documents; documents: attention and state stop at each EOT",
      OneOf{{"none", "documents"}});
    v.section("mqar", mqar, "data.source: mqar: the task's shape (T = seq_len, V = model.vocab_size)");
  }
};

struct OptimConfig {
  double lr = 3e-3;
  double min_lr_ratio = 0.1;
  double weight_decay = 0.1;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  std::string schedule = "cosine";
  int64_t warmup_steps = 20;
  double decay_fraction = 0.2;  ///< WSD: final share of steps spent decaying
  bool decay_norms_and_embeddings = false;
  template <class V> void visit(V& v) {
    v("lr", lr, "peak learning rate", Bounds{0, 10});
    v("min_lr_ratio", min_lr_ratio, "final lr as a fraction of peak", Bounds{0, 1});
    v("weight_decay", weight_decay, "decoupled (AdamW) weight decay", Bounds{0, 10});
    v("beta1", beta1, "Adam beta1", Bounds{0, 1});
    v("beta2", beta2, "Adam beta2", Bounds{0, 1});
    v("eps", eps, "Adam epsilon", Bounds{0, 1});
    v("schedule", schedule, "lr schedule after warmup", OneOf{{"cosine", "wsd", "constant"}});
    v("warmup_steps", warmup_steps, "linear warmup steps", Bounds{0, 1e12});
    v("decay_fraction", decay_fraction, "wsd: share of steps in the final decay", Bounds{0, 1});
    v("decay_norms_and_embeddings", decay_norms_and_embeddings,
      "apply weight decay to norms, biases and embeddings too");
  }
};

struct TrainConfig {
  int64_t steps = 300;
  int64_t batch_size = 16;  ///< sequences per micro-batch per rank
  int64_t grad_accum = 1;
  double clip = 1.0;        ///< global grad-norm clip; 0 disables
  std::string device = "auto";
  std::string dtype = "auto";  ///< auto: bf16 autocast on CUDA, fp32 on CPU; fp64 for exactness tests
  std::string nan_policy = "skip";
  int64_t threads = 0;      ///< CPU intra-op threads; 0 = all cores
  std::string kernel = "auto";
  template <class V> void visit(V& v) {
    v("steps", steps, "optimizer steps", Bounds{1, 1e12});
    v("batch_size", batch_size, "sequences per micro-batch per rank", Bounds{1, 1e6});
    v("grad_accum", grad_accum, "micro-batches per optimizer step", Bounds{1, 1e6});
    v("clip", clip, "global gradient-norm clip (0 = off)", Bounds{0, 1e6});
    v("device", device, "where to train", OneOf{{"auto", "cpu", "cuda"}});
    v("dtype", dtype, "compute dtype", OneOf{{"auto", "fp32", "bf16", "fp64"}});
    v("nan_policy", nan_policy, "on a non-finite loss or gradient", OneOf{{"skip", "stop"}});
    v("threads", threads, "CPU intra-op threads (0 = all cores)", Bounds{0, 4096});
    v("kernel", kernel, "mixer kernel choice", OneOf{{"auto", "reference", "recurrent", "chunked", "fused"}});
  }
};

struct EvalConfig {
  int64_t every = 100;   ///< 0 disables periodic validation
  int64_t batches = 8;
  template <class V> void visit(V& v) {
    v("every", every, "validate every N steps (0 = only at the end)", Bounds{0, 1e12});
    v("batches", batches, "validation batches per evaluation", Bounds{1, 1e9});
  }
};

struct CheckpointConfig {
  int64_t every = 100;  ///< 0: only at the end and on SIGINT/SIGTERM
  int64_t keep = 2;
  template <class V> void visit(V& v) {
    v("every", every, "save every N steps (0 = at the end only)", Bounds{0, 1e12});
    v("keep", keep, "complete checkpoints kept on disk", Bounds{1, 1e6});
  }
};

struct LogConfig {
  int64_t every = 10;
  bool tensorboard = true;
  template <class V> void visit(V& v) {
    v("every", every, "progress line and metrics every N steps", Bounds{1, 1e12});
    v("tensorboard", tensorboard, "write TensorBoard event files");
  }
};

struct ParallelConfig {
  int64_t dp = 0;           ///< data-parallel degree; 0 = world size / cp
  int64_t cp = 1;           ///< context-parallel degree: ranks sharing one sequence
  int64_t zero = 0;         ///< 0: DDP; 1: AdamW moments sharded across the DP ranks
  std::string backend = "auto";  ///< auto: nccl on CUDA, gloo on CPU
  int64_t timeout_s = 300;  ///< a collective or rendezvous taking longer is an error
  double bucket_mb = 25;    ///< gradient bucket size (fractions allowed: small models, tests)
  /// Context-parallel strategies to prefer, comma-separated; each layer takes the first its mixer
  /// implements, else its mixer's default (`auto`: every mixer's default).
  std::string cp_strategy = "auto";
  template <class V> void visit(V& v) {
    v("dp", dp, "data-parallel degree (0 = world size / cp)", Bounds{0, 1e6});
    v("cp", cp, "context-parallel degree: ranks that split one sequence", Bounds{1, 1e6});
    v("zero", zero, "ZeRO stage: 0 (DDP) or 1 (optimizer state sharded)", Bounds{0, 1});
    v("backend", backend, "collective backend", OneOf{{"auto", "gloo", "nccl"}});
    v("timeout_s", timeout_s, "seconds before a stuck collective or rendezvous fails", Bounds{1, 86400});
    v("bucket_mb", bucket_mb, "data parallel: MB of gradients per all-reduce", Bounds{0.001, 4096});
    v("cp_strategy", cp_strategy,
      "context parallel: preferred strategies, comma-separated (auto = each mixer's default; "
      "docs/parallelism.md)");
  }
};

struct RunConfig {
  RunSection run;
  ModelConfig model;
  DataConfig data;
  OptimConfig optim;
  TrainConfig train;
  EvalConfig eval;
  CheckpointConfig checkpoint;
  LogConfig log;
  ParallelConfig parallel;

  /// Cross-field rules; throws ConfigError with every broken rule.
  void validate() const;
  /// The resolved config as YAML (saved as runs/<name>/config.yaml).
  std::string to_yaml() const;
  /// FNV-1a of to_yaml() minus what a resume may change (run.*, train.steps/threads/device,
  /// optim.warmup_steps, eval.*, checkpoint.*, log.*, parallel.*), stored in checkpoints. The
  /// batch enters as the global one (train.batch_size × world_size), so 2 ranks × B and
  /// 1 rank × 2B hash alike and may resume each other's checkpoints.
  std::string model_hash(int64_t world_size = 1) const;
  std::string run_dir() const { return run.dir + "/" + run.name; }
};

/// Loads a recipe (extends + overrides), parses and validates it.
RunConfig load_run_config(const std::string& recipe, const std::vector<std::string>& overrides);

/// Mixer `type` (registered) with every option at its default.
MixerSpec default_mixer_spec(const std::string& type);
/// Mixer `type` with the options of the YAML mapping `options` (e.g. "{window: 5}"), the rest at
/// their defaults; throws ConfigError for a bad option.
MixerSpec mixer_spec(const std::string& type, const std::string& options);
RunConfig parse_run_config(const YamlSource& src);

}  // namespace attnlab
