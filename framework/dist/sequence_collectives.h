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

}  // namespace attnlab
