// The `convert:` section of a linearization recipe (docs/conversion.md, "Linearizing"): which
// softmax teacher, which of its layers become which mixer, and the two stages (attention
// transfer, then LoRA fine-tuning). Parsed with the same visitors as every other section.
#pragma once
#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "framework/config/options.h"

namespace attnlab::convert {

/// Stage 1: the new parameters of every converted mixer learn to reproduce the teacher layer's
/// output from the teacher layer's input, everything else frozen.
struct TransferStage {
  int64_t steps = 200;  ///< 0 skips the stage
  double lr = 1e-2;     ///< LoLCATs: 1e-2
  int64_t warmup_steps = 10;
  double weight_decay = 0;
  double mse_factor = 1000;  ///< weight of the per-layer output MSE (LoLCATs: 1000)
  double xent_factor = 0;    ///< weight of the attention-weight cross entropy (Hedgehog's loss)
  bool train_qk = false;     ///< also train the inherited q and k projections (LoLCATs train_qk)
  template <class V> void visit(V& v) {
    v("steps", steps, "optimizer steps of attention transfer (0 = skip)", Bounds{0, 1e12});
    v("lr", lr, "peak learning rate", Bounds{0, 10});
    v("warmup_steps", warmup_steps, "linear warmup steps", Bounds{0, 1e12});
    v("weight_decay", weight_decay, "AdamW weight decay", Bounds{0, 10});
    v("mse_factor", mse_factor, "factor on the mean per-layer output MSE", Bounds{0, 1e12});
    v("xent_factor", xent_factor, "factor on the mean per-layer attention-weight cross entropy (0 = off)",
      Bounds{0, 1e12});
    v("train_qk", train_qk, "also train the converted layers' inherited q_proj and k_proj");
  }
};

/// Stage 2: low-rank adapters on the named linear layers of every block's mixer, trained with the
/// next-token loss, everything else frozen; merged into the weights at the end.
struct LoraStage {
  int64_t steps = 200;  ///< 0 skips the stage
  double lr = 1e-4;
  int64_t warmup_steps = 10;
  double weight_decay = 0;
  int64_t rank = 8;
  double alpha = 16;  ///< the update is (alpha / rank) · B A
  std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj"};
  template <class V> void visit(V& v) {
    v("steps", steps, "optimizer steps of LoRA fine-tuning (0 = skip)", Bounds{0, 1e12});
    v("lr", lr, "peak learning rate", Bounds{0, 10});
    v("warmup_steps", warmup_steps, "linear warmup steps", Bounds{0, 1e12});
    v("weight_decay", weight_decay, "AdamW weight decay", Bounds{0, 10});
    v("rank", rank, "LoRA rank r", Bounds{1, 65536});
    v("alpha", alpha, "LoRA alpha: the update is alpha / r * B A", Bounds{0, 1e9});
  }
};

struct ConvertConfig {
  std::string teacher;     ///< the teacher's run folder (its config.yaml and newest checkpoint)
  std::string checkpoint;  ///< a specific checkpoint folder of the teacher; empty: the newest
  std::vector<int64_t> layers;  ///< layers to convert; empty: every softmax layer
  std::vector<int64_t> keep;    ///< layers left as softmax (a hybrid)
  int64_t keep_every = 0;       ///< keep every k-th layer (k-1, 2k-1, ...) as softmax; 0: none
  YAML::Node target;            ///< {type: <mixer>, <options>...}
  TransferStage transfer;
  LoraStage lora;
  template <class V> void visit(V& v) {
    v("teacher", teacher, "the softmax teacher's run folder");
    v("checkpoint", checkpoint, "a checkpoint folder of the teacher (default: its newest)");
    v("layers", layers, "indices of the layers to convert (default: every softmax layer)");
    v("keep", keep, "indices of layers that stay softmax");
    v("keep_every", keep_every, "keep every k-th layer as softmax (hybrid; 0 = none)", Bounds{0, 1e6});
  }
};

/// Parses `convert:` of `src` (errors name the recipe, the YAML path and what was expected).
ConvertConfig parse_convert_config(const YamlSource& src);

/// The layers of a `num_layers` teacher that `c` converts, in order; throws ConfigError for an
/// index out of range or a layer both converted and kept.
std::vector<int64_t> converted_layers(const ConvertConfig& c, int64_t num_layers);

}  // namespace attnlab::convert
