#include "framework/data/sampler.h"

#include <ATen/ops/empty.h>

#include <random>
#include <stdexcept>

namespace attnlab {

BatchSampler::BatchSampler(std::shared_ptr<const TokenStream> stream, int64_t seq_len,
                           uint64_t seed, int64_t rank, int64_t world)
    : stream_(std::move(stream)), seq_len_(seq_len), seed_(seed), rank_(rank), world_(world) {
  windows_ = (stream_->size() - 1) / seq_len_;
  if (windows_ < 1)
    throw std::runtime_error(stream_->name() + ": " + std::to_string(stream_->size()) +
                             " tokens are fewer than one window of data.seq_len+1 = " +
                             std::to_string(seq_len_ + 1) + " tokens");
}

int64_t BatchSampler::window_of(int64_t g) {
  if (g < 0) throw std::out_of_range("data sampler: negative sample index " + std::to_string(g));
  const int64_t epoch = g / windows_;
  if (epoch != perm_epoch_) {
    // Our own Fisher-Yates over mt19937_64 (whose output the standard fixes), not
    // std::shuffle (implementation-defined), so the order is the same on every platform.
    std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch));
    perm_.resize(windows_);
    for (int64_t i = 0; i < windows_; ++i) perm_[i] = i;
    for (int64_t i = windows_ - 1; i > 0; --i) {
      const auto j = static_cast<int64_t>(
          (static_cast<unsigned __int128>(rng()) * static_cast<uint64_t>(i + 1)) >> 64);
      std::swap(perm_[i], perm_[j]);
    }
    perm_epoch_ = epoch;
  }
  return perm_[g % windows_];
}

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

}  // namespace attnlab
