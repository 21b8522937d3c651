// Ring attention for context parallelism (docs/parallelism.md, "ring_lse"): each rank keeps
// its queries and passes its keys and values around the context-parallel group, P − 1 hops;
// every visiting block gives partial outputs with their log-sum-exp, merged in fp32 (fp64 for
// fp64 inputs). A key is visible to a query if its position is not later and (with packed
// documents) it is in the same document; a block with nothing visible is skipped. The backward
// passes the blocks around again with their dK, dV accumulators, which reach their owner after
// P hops; P = exp(s − lse) is recomputed from the stored lse, so nothing T × T is kept.
#pragma once
#include <ATen/core/Tensor.h>

namespace attnlab {
class Communicator;
}

namespace attnlab::layers {

/// q [B, H, S, d]; k, v [B, Hkv, S, d] (H a multiple of Hkv); positions [S] or [B, S] int64;
/// documents [B, S] int64 or undefined. Returns [B, H, S, d] in q's dtype.
at::Tensor ring_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& positions,
                          const at::Tensor& documents, double scale, Communicator& ring);

}  // namespace attnlab::layers
