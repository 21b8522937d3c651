// Collectives over a context-parallel group that autograd can differentiate through
// (docs/parallelism.md, "Context parallelism"). Every rank of the group holds one shard of the
// sequence, all of the same length.
#pragma once
#include <ATen/core/Tensor.h>

#include "framework/dist/communicator.h"

namespace attnlab {

/// All ranks' shards of `x` concatenated along `dim`, in rank order. Backward: each rank gets
/// the sum over ranks of the gradient of its own slice (a reduce-scatter).
at::Tensor gather_sequence(const at::Tensor& x, Communicator& group, int64_t dim);

/// Rank r receives rank r − `distance`'s `x` (zeros where that rank does not exist) and sends its
/// own to rank r + `distance`. Backward shifts the gradients the other way. The point-to-point
/// step of a halo exchange and of the prefix scan over ranks.
at::Tensor shift_ranks(const at::Tensor& x, Communicator& group, int64_t distance);

/// The halo of a shard: the `n` entries of x along `dim` just before this rank's shard (fewer
/// near the sequence start; undefined where there are none, e.g. on rank 0), and `exchanged`,
/// what the collective produced here, used or not, for the caller to tie into its output (every
/// rank takes part). One shift from the previous rank when n ≤ the shard length, else an
/// all-gather of every shard's last min(n, S) entries.
struct ShardHalo {
  at::Tensor before, exchanged;
};
ShardHalo tokens_before_shard(const at::Tensor& x, Communicator& group, int64_t n, int64_t dim);

/// Ulysses: x [B, S, H, d], this rank's shard of the sequence for all heads -> [B, P·S, H/P, d],
/// the whole sequence for this rank's group of heads (rank j holds heads j·H/P ..). One
/// all-to-all; backward is heads_to_sequence. H must be a multiple of P.
at::Tensor sequence_to_heads(const at::Tensor& x, Communicator& group);
/// The inverse: [B, P·S, H/P, d] -> [B, S, H, d].
at::Tensor heads_to_sequence(const at::Tensor& y, Communicator& group);

/// `x`, with `unused` (the result of a collective above that this rank ended up not needing, e.g.
/// rank 0's empty prefix) tied into its graph at zero cost. Every rank must run the backward of
/// every collective it took part in, or the other ranks wait for it forever.
at::Tensor tie_to_graph(const at::Tensor& x, const at::Tensor& unused);

}  // namespace attnlab
