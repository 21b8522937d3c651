// ZeRO-1 (docs/parallelism.md, "ZeRO-1"): the AdamW moments are sharded across the
// data-parallel ranks. Every gradient bucket (framework/train/grad_sync.h) is padded to a
// multiple of the world size P and reduce-scattered, so rank r receives the mean gradient of
// slice r of each bucket; it keeps moments for exactly those elements (about 1/P of DDP's),
// updates them, and the buckets' parameter slices are all-gathered back into every rank's
// whole model. The update is elementwise, so each element gets the arithmetic DDP would give it.
#pragma once
#include <memory>

#include "framework/train/optimizer.h"

namespace attnlab {

std::unique_ptr<Optimizer> make_zero1_adamw(const NamedTensors& params, const OptimConfig& optim,
                                            const ParallelConfig& parallel, Communicator& comm);

}  // namespace attnlab
