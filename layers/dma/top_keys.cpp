#include "layers/dma/top_keys.h"

#include <ATen/Parallel.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>
#include <vector>

namespace attnlab::layers {
namespace {

/// An int64 [T] or [B, T] tensor (or `fallback`) as a contiguous [B, T] CPU tensor.
at::Tensor per_batch(const at::Tensor& t, int64_t B, int64_t T, const at::Tensor& fallback) {
  const at::Tensor r = t.defined() ? t.to(at::kCPU, at::kLong) : fallback;
  return (r.dim() == 1 ? r.unsqueeze(0) : r).expand({B, T}).contiguous();
}

/// A kept key: its δ, position and index. The heap's top is the key the next arrival pushes out:
/// the smallest δ, and among equal δ the oldest (ties go to recent keys).
struct Kept {
  double delta;
  int64_t pos, j;
};
bool outranks(const Kept& a, const Kept& b) { return a.delta != b.delta ? a.delta > b.delta : a.pos > b.pos; }

}  // namespace

at::Tensor top_keys_until(const at::Tensor& bias, const kernels::AttentionSpec& spec, int64_t w) {
  TORCH_CHECK(bias.dim() == 3, "dma: the key bias must be [B, Hkv, Tk], got ", bias.sizes());
  TORCH_CHECK(w >= 1, "dma: keep_window must be >= 1, got ", w);
  // Only with a sliding window could a key pushed out come back (an older, larger key ages out).
  TORCH_CHECK(spec.window == 0, "dma: the top-w key selection does not combine with a sliding window");
  const int64_t B = bias.size(0), G = bias.size(1), T = bias.size(2);
  if (T <= w) return {};
  const at::Tensor delta = bias.detach().to(at::kCPU, at::kDouble).contiguous();
  const at::Tensor pos = per_batch(spec.k_pos, B, T, at::arange(T, at::kLong));
  const at::Tensor doc = per_batch(spec.k_doc, B, T, at::zeros({T}, at::kLong));
  at::Tensor until = at::full({B, G, T}, std::numeric_limits<int64_t>::max(), at::kLong);
  const double* dp = delta.const_data_ptr<double>();
  const int64_t *pp = pos.const_data_ptr<int64_t>(), *docp = doc.const_data_ptr<int64_t>();
  int64_t* up = until.data_ptr<int64_t>();
  std::atomic<bool> pushed_out{false};
  at::parallel_for(0, B * G, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bg = begin; bg < end; ++bg) {
      const int64_t b = bg / G;
      const int64_t *kp = pp + b * T, *kd = docp + b * T;
      std::vector<int64_t> order(T);  // keys in position order (the identity unless given otherwise)
      std::iota(order.begin(), order.end(), 0);
      if (!std::is_sorted(kp, kp + T))
        std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return kp[x] < kp[y]; });
      std::unordered_map<int64_t, std::vector<Kept>> kept;  // per document
      for (const int64_t j : order) {
        const double x = dp[bg * T + j];
        std::vector<Kept>& heap = kept[kd[j]];
        heap.push_back({std::isnan(x) ? -std::numeric_limits<double>::infinity() : x, kp[j], j});
        std::push_heap(heap.begin(), heap.end(), outranks);
        if (static_cast<int64_t>(heap.size()) <= w) continue;
        std::pop_heap(heap.begin(), heap.end(), outranks);
        up[bg * T + heap.back().j] = kp[j];  // hidden from this key's position on
        heap.pop_back();
        pushed_out.store(true, std::memory_order_relaxed);
      }
    }
  });
  return pushed_out.load() ? until.to(bias.device()) : at::Tensor();
}

}  // namespace attnlab::layers
