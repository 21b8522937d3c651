// Deterministic, resumable, rank-sharded batches. The token stream is cut into windows of
// seq_len+1 tokens starting every seq_len tokens; each epoch visits them in a permutation
// drawn from (seed, epoch). Global sample g lives at window perm_{g / n}[g % n]; rank r of W
// takes g = cursor * W + r for cursor = 0, 1, ... The cursor is the only state, so a
// checkpoint stores one integer and resume is exact.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "framework/data/epoch_order.h"
#include "framework/data/shards.h"
#include "framework/data/source.h"

namespace attnlab {

class BatchSampler {
 public:
  BatchSampler(std::shared_ptr<const TokenStream> stream, int64_t seq_len, uint64_t seed,
               int64_t rank = 0, int64_t world = 1);
  int64_t num_windows() const { return windows_; }
  /// The next `batch` samples for this rank as int64 [batch, seq_len + 1]; advances the cursor.
  at::Tensor next(int64_t batch);
  /// Windows first..first+batch-1 in stream order (validation), as [batch, seq_len + 1].
  at::Tensor sequential(int64_t first, int64_t batch) const;

  int64_t cursor = 0;

 private:
  int64_t window_of(int64_t global_sample);
  std::shared_ptr<const TokenStream> stream_;
  int64_t seq_len_, windows_;
  int64_t rank_, world_;
  EpochOrder order_;
};

/// data.source: shards. Inputs and targets are a window's first and last seq_len tokens.
class ShardSource : public DataSource {
 public:
  ShardSource(std::shared_ptr<const TokenStream> stream, int64_t seq_len, uint64_t seed,
              int64_t rank = 0, int64_t world = 1)
      : sampler_(std::move(stream), seq_len, seed, rank, world) {}
  TokenBatch next(int64_t batch) override;
  TokenBatch sequential(int64_t first, int64_t batch) const override;

 private:
  BatchSampler sampler_;
};

}  // namespace attnlab
