// The mixer contract (docs/design: "The mixer contract"). A mixer maps x [B, T, D] -> y [B, T, D]
// causally. Concrete mixers live in layers/<name>/ and register themselves with
// ATTNLAB_REGISTER_MIXER; framework/ only ever sees this interface.
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "framework/config/options.h"
#include "framework/model/init.h"
#include "framework/registry/registry.h"

namespace attnlab {

/// How a mixer splits work across context-parallel ranks (docs/parallelism.md, "Context
/// parallelism"). allgather_kv: attention gathers the keys and values of the whole sequence once.
/// state_gather: a recurrence publishes each shard's final state and decay in one all-gather;
/// state_scan: the same combine as a log-depth prefix scan of point-to-point steps. ulysses:
/// all-to-all from sequence shards to head shards and back. ring_lse: keys and values passed
/// around the ring, partial outputs merged by log-sum-exp. ring_sum, halo and serial_state are
/// for mixers still to come.
enum class CpStrategy { none, allgather_kv, state_gather, state_scan, ring_lse, ring_sum, halo, serial_state, ulysses };
const char* to_string(CpStrategy s);
/// The strategy named `name` (as to_string writes it); nullopt for an unknown name.
std::optional<CpStrategy> cp_strategy_named(const std::string& name);

class Communicator;
struct DocumentRows;

/// Per-call information a mixer may need besides its input (docs/design.md, "The mixer contract").
struct MixerContext {
  bool training = false;
  /// Implementation choice: auto | reference | chunked | fused (each mixer lists what it has).
  std::string kernel = "auto";
  /// [B, T] int64 position of each token: absolute in the sequence, or within its document when
  /// documents are packed (RoPE restarts per document, as if each ran alone); undefined means
  /// 0..T-1 in every row (shifted to the shard under context parallelism).
  at::Tensor positions;
  /// [B, T] int64 packed documents: the document index of each token, non-decreasing along T
  /// and the same across context-parallel shards of one sequence; undefined means one document
  /// per row. No information may cross from one document to the next. A mixer that does not
  /// handle this itself (handles_documents() false) never sees it: mix_documents
  /// (framework/model/documents.h) runs each document as its own row.
  at::Tensor documents;
  /// The context-parallel group; null when not context-parallel.
  Communicator* cp = nullptr;
  /// With `cp`: the strategy this call uses, one of the mixer's cp_strategies() (set by the
  /// block from parallel.cp_strategy).
  CpStrategy cp_strategy = CpStrategy::none;
  /// parallel.cp_strategy: preferred strategies in order; a block takes the first its mixer
  /// implements, else the mixer's default.
  std::vector<CpStrategy> cp_preference;
  /// Set by the model: `documents` as rows, computed once per forward for every block.
  std::shared_ptr<const DocumentRows> document_rows;
  /// When set, every block calls it with its index and its mixer's input and output (attention
  /// transfer reads a frozen teacher's layers this way; docs/conversion.md).
  std::function<void(int64_t layer, const at::Tensor& in, const at::Tensor& out)> on_mixer;
};

/// Throws, naming `who`, unless `ctx` is a whole sequence of one document per row (no packed
/// documents, no context-parallel shard): what Mixer::attention_weights takes.
void require_whole_sequence(const MixerContext& ctx, const char* who);

/// A context with just a kernel choice (tests, decoding).
inline MixerContext kernel_context(std::string kernel, bool training = false) {
  MixerContext c;
  c.training = training;
  c.kernel = std::move(kernel);
  return c;
}

/// A named auxiliary loss of one forward (load balancing, ...): the trainer adds weight × value
/// to the loss and logs value as train/aux/<name>, summed over the blocks that report it.
struct AuxLoss {
  std::string name;
  at::Tensor value;  ///< 0-dim
  double weight = 1.0;
};

/// How a mixer takes over a softmax attention layer when a model is linearized (docs/conversion.md,
/// "Linearizing"). `inherits`: prefixes of the parameter names it copies from the teacher's mixer
/// unchanged (same name, same shape, e.g. "q_proj."); every other parameter of the mixer is new
/// and trained by attention transfer. `drops_options`: teacher options it knowingly does without
/// (a mixer without RoPE drops rope_base). Empty `inherits`: the mixer cannot be a target.
/// `attention_weights`: the mixer implements Mixer::attention_weights, so the transfer's
/// attention-weight cross entropy can train it.
struct AttentionTakeover {
  std::vector<std::string> inherits;
  std::vector<std::string> drops_options;
  bool attention_weights = false;
};

/// Opaque per-sequence decoding state (KV cache, recurrent state, ...).
struct MixerState {
  virtual ~MixerState() = default;
  int64_t position = 0;  ///< tokens consumed so far
};

/// Model-level facts a mixer is built from.
struct MixerShape {
  int64_t dim = 0;          ///< model width D
  int64_t layer_index = 0;  ///< 0-based depth of this block
  int64_t num_layers = 0;
  int64_t max_seq_len = 0;
};

/// Parsed options of one mixer; `emit` writes them back as YAML (round-trip tested).
struct MixerOptions {
  virtual ~MixerOptions() = default;
  virtual void emit(EmitVisitor& v) = 0;
};

class Mixer : public torch::nn::Module {
 public:
  /// x [B, T, D] -> [B, T, D]; causal in T.
  virtual at::Tensor forward(const at::Tensor& x, const MixerContext& ctx) = 0;
  /// Fresh decoding state for `batch` sequences of at most `max_len` tokens.
  virtual std::unique_ptr<MixerState> init_state(int64_t batch, int64_t max_len) = 0;
  /// One token: x_t [B, D] -> [B, D]; advances `state`.
  virtual at::Tensor step(const at::Tensor& x_t, MixerState& state) = 0;
  /// Auxiliary losses of the last forward, by name (none by default).
  virtual std::vector<AuxLoss> aux_losses() { return {}; }
  /// True if forward honours MixerContext::documents itself (masks, state resets); otherwise the
  /// model runs each packed document as a separate row. Required for packed documents under
  /// context parallelism, where no rank holds a whole document.
  virtual bool handles_documents() const { return false; }
  /// The context-parallel strategies forward implements, the default first; empty: cp > 1 is
  /// refused for this mixer.
  virtual std::vector<CpStrategy> cp_strategies() const { return {}; }
  /// Whether strategy `s` (one of cp_strategies()) works with `ranks` context-parallel ranks
  /// (e.g. ulysses needs them to divide the heads).
  virtual bool cp_supports(CpStrategy /*s*/, int64_t /*ranks*/) const { return true; }
  /// Forward FLOPs per token for a sequence of length T beyond its parameter matmuls
  /// (e.g. attention scores), used for the MFU estimate.
  virtual double extra_flops_per_token(int64_t /*seq_len*/) const { return 0; }
  /// What this mixer takes from a softmax layer it replaces (none by default).
  virtual AttentionTakeover attention_takeover() const { return {}; }
  /// For a mixer whose output is, per head, a weighted average of its values before the output
  /// projection (softmax, its windowed variants, hedgehog): the weights a [B, H, T, T], rows
  /// summing to 1 over the visible keys, with y = Wo(a v). Undefined (the default) for a mixer
  /// that has no such matrix. It is T×T per head: attention transfer's cross entropy calls it one
  /// layer at a time on training-length sequences (docs/conversion.md). Whole sequences only (no
  /// context parallelism, no packed documents: the caller runs documents as rows).
  virtual at::Tensor attention_weights(const at::Tensor& /*x*/, const MixerContext& /*ctx*/) { return {}; }
  /// Initialise every parameter this mixer registered, in registration order (docs/model.md,
  /// "Parameter init"): input projections N(0, s.std), the output projection N(0,
  /// s.residual_std), biases zero unless the mixer documents otherwise.
  virtual void init_parameters(const InitScales& s) = 0;
};

/// The first of `preference` that `mixer` implements at `ranks`, else the first of its own that
/// works there; none if none does.
CpStrategy choose_cp_strategy(const Mixer& mixer, const std::vector<CpStrategy>& preference, int64_t ranks);

struct MixerEntry {
  std::string description;
  std::vector<std::string> option_docs;
  std::shared_ptr<MixerOptions> (*parse)(ParseVisitor& v);
  std::shared_ptr<Mixer> (*create)(const MixerOptions& opts, const MixerShape& shape);
};
using MixerRegistry = Registry<MixerEntry>;

/// A mixer type plus its parsed options (one entry of model.pattern).
struct MixerSpec {
  std::string type;
  std::shared_ptr<MixerOptions> options;
};

namespace detail {
template <class Opts>
struct OptionsBox : MixerOptions {
  Opts value;
  void emit(EmitVisitor& v) override { value.visit(v); }
};
template <class M, class Opts>
MixerEntry make_mixer_entry(const char* description) {
  MixerEntry e;
  e.description = description;
  e.option_docs = describe_options<Opts>();
  e.parse = [](ParseVisitor& v) -> std::shared_ptr<MixerOptions> {
    auto box = std::make_shared<OptionsBox<Opts>>();
    box->value.visit(v);
    return box;
  };
  e.create = [](const MixerOptions& o, const MixerShape& s) -> std::shared_ptr<Mixer> {
    return std::make_shared<M>(static_cast<const OptionsBox<Opts>&>(o).value, s);
  };
  return e;
}
}  // namespace detail

/// One line per mixer, in its .cpp:
///   ATTNLAB_REGISTER_MIXER("name", MyMixer, MyMixerOptions, "one-line description");
#define ATTNLAB_REGISTER_MIXER(NAME, CLASS, OPTIONS, DESCRIPTION)                         \
  static const bool attnlab_registered_##CLASS = ::attnlab::MixerRegistry::instance().add( \
      NAME, ::attnlab::detail::make_mixer_entry<CLASS, OPTIONS>(DESCRIPTION))

}  // namespace attnlab
