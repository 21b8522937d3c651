// Context parallelism for the softmax-family mixers (docs/parallelism.md, "Context
// parallelism"): which keys a shard's queries attend to, and how they reach the shard.
//   allgather_kv  every shard's keys, values and key biases, gathered once (any mixer).
//   halo          a sliding window (swa): only the window − 1 tokens before the shard, plus the
//                 sink tokens, cross ranks.
//   ring_sum      sigmoid attention: the key blocks travel around the ring, P − 1 hops, and each
//                 visiting block's partial output is simply added (no normaliser to merge).
// All of them are differentiable: autograd runs the collectives' backward passes (gradients of
// keys, values and biases go back to the rank that owns them).
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>

#include "kernels/attention/spec.h"

namespace attnlab {
class Communicator;
}

namespace attnlab::layers {

struct AttendCall;  // layers/common/attention_mixer.h

/// Keys [B, Tk, Hkv, d], values, key biases [B, Tk, Hkv] (or undefined), their positions ([Tk]
/// or [B, Tk] int64) and documents ([B, Tk] int64 or undefined). `exchanged`: a collective's
/// result this rank did not need, to tie into the output (every rank must run every backward).
struct ShardKeys {
  at::Tensor k, v, key_bias, pos, docs, exchanged;
};

/// allgather_kv: the keys of the whole sequence.
ShardKeys gather_all_keys(const ShardKeys& own, Communicator& cp);

/// halo: the keys a window of `window` positions (the query's own included) and `sinks` leading
/// positions can reach from this shard: the window − 1 tokens before it (one shift from the
/// previous rank), the sink tokens not already among those (an all-gather of every shard's first
/// min(sinks, S) tokens), and the shard itself. A window longer than a shard, or sinks with
/// packed documents (every document has its own, on any earlier rank), gather all keys instead.
/// Without documents every row has the same positions (the model's layout).
ShardKeys window_keys(const ShardKeys& own, int64_t window, int64_t sinks, Communicator& cp);

/// ring_sum: Σ over the shards s ≤ this one of attend(queries of `call`, keys of shard s), where
/// `call` holds this shard's q [B, H, S, d], spec and gates; `own` the shard's keys. For
/// transforms whose partial outputs add (sigmoid). Returns [B, H, S, d].
at::Tensor ring_sum_attention(const AttendCall& call, const ShardKeys& own, Communicator& cp,
                              const std::function<at::Tensor(const AttendCall&)>& attend);

}  // namespace attnlab::layers
