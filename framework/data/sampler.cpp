#include "framework/data/sampler.h"

#include <ATen/ops/empty.h>

#include <algorithm>
#include <stdexcept>

namespace attnlab {

BatchSampler::BatchSampler(std::shared_ptr<const TokenStream> stream, int64_t seq_len,
                           uint64_t seed, int64_t rank, int64_t world)
    : stream_(std::move(stream)), seq_len_(seq_len), windows_((stream_->size() - 1) / seq_len_),
      rank_(rank), world_(world), order_(std::max<int64_t>(windows_, 1), seed) {
  if (windows_ < 1)
    throw std::runtime_error(stream_->name() + ": " + std::to_string(stream_->size()) +
                             " tokens are fewer than one window of data.seq_len+1 = " +
                             std::to_string(seq_len_ + 1) + " tokens");
}

int64_t BatchSampler::window_of(int64_t g) { return order_.at(g); }

at::Tensor BatchSampler::next(int64_t batch) {
  at::Tensor out = at::empty({batch, seq_len_ + 1}, at::kLong);
  int64_t* p = out.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t w = window_of((cursor + b) * world_ + rank_);
    stream_->read(w * seq_len_, seq_len_ + 1, p + b * (seq_len_ + 1));
  }
  cursor += batch;
  return out;
}

at::Tensor BatchSampler::sequential(int64_t first, int64_t batch) const {
  at::Tensor out = at::empty({batch, seq_len_ + 1}, at::kLong);
  int64_t* p = out.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b)
    stream_->read(((first + b) % windows_) * seq_len_, seq_len_ + 1, p + b * (seq_len_ + 1));
  return out;
}

namespace {
TokenBatch split_windows(const at::Tensor& windows) {
  const int64_t T = windows.size(1) - 1;
  return {windows.narrow(1, 0, T), windows.narrow(1, 1, T)};
}
}  // namespace

TokenBatch ShardSource::next(int64_t batch) {
  sampler_.cursor = cursor;  // the trainer sets the cursor on resume
  TokenBatch out = split_windows(sampler_.next(batch));
  cursor = sampler_.cursor;
  return out;
}

TokenBatch ShardSource::sequential(int64_t first, int64_t batch) const {
  return split_windows(sampler_.sequential(first, batch));
}

}  // namespace attnlab
