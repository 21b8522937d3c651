// `attnlab bench mixer --mixer softmax|sigmoid|swa|dma|moh|ssa`: times the softmax-family
// attention kernel (kernels/attention/) at head shapes, forward and forward+backward, fp32 on
// CPU, next to SDPA's causal kernel at the same shapes in the same run (docs/benchmarks.md).
// Each mixer is timed at the sparsity its option gives: sliding window,
// active rows, DMA's top-w keys of a random per-key bias, selected key blocks.
#include <ATen/TensorOperators.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <fmt/format.h>

#include <cmath>
#include <tuple>

#include "kernels/attention/fused_cpu.h"
#include "layers/dma/top_keys.h"
#include "tools/attnlab/bench_attention.h"
#include "tools/common/bench_rows.h"
#include "tools/common/median_time.h"
#include "tools/common/memory_meter.h"

namespace attnlab::cli {
using tools::median_ms;

bool is_attention_bench(const std::string& mixer) {
  for (const char* m : {"softmax", "sigmoid", "swa", "dma", "moh", "ssa"})
    if (mixer == m) return true;
  return false;
}

int run_attention_bench(const AttentionBenchArgs& a) {
  const int64_t B = a.batch, H = a.heads, Hkv = a.kv_heads ? a.kv_heads : a.heads, d = a.head_dim;
  fmt::print("bench mixer {}: B={} H={}/{} d={} keep={:.2f} fp32 on CPU ({} threads), median of {}\n\n", a.mixer, B, H,
             Hkv, d, a.keep, at::get_num_threads(), a.reps);
  fmt::print("| T | impl | fwd ms | fwd+bwd ms | fwd+bwd vs SDPA | visible pairs |\n|---|---|---|---|---|---|\n");
  for (int64_t T : a.seq) {
    auto o = at::TensorOptions().dtype(at::kFloat);
    at::Tensor q = at::randn({B, H, T, d}, o), k = at::randn({B, Hkv, T, d}, o), v = at::randn({B, Hkv, T, d}, o);
    auto leaf = [](const at::Tensor& t) { return t.detach().requires_grad_(true); };
    at::Tensor qg = leaf(q), kg = leaf(k), vg = leaf(v);
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    const bool gqa = H != Hkv;
    tools::MemoryWindow sdpa_memory;
    const double sf = median_ms([&] { at::NoGradGuard ng; at::scaled_dot_product_attention(q, k, v, {}, 0.0, true, scale, gqa); }, a.reps);
    const double sb = median_ms([&] { at::scaled_dot_product_attention(qg, kg, vg, {}, 0.0, true, scale, gqa).sum().backward(); }, a.reps);
    const double sdpa_mb = sdpa_memory.extra_mb();
    // The spec the mixer's sparsity option gives at this length.
    kernels::AttentionSpec dense, spec;
    dense.scale = spec.scale = scale;
    double pairs = 0.5;  // fraction of the T² (query, key) pairs that are visible
    if (a.mixer == "sigmoid") spec.transform = kernels::ScoreTransform::sigmoid, spec.sigmoid_bias = -std::log(T);
    if (a.mixer == "swa") {
      spec.window = std::max<int64_t>(1, static_cast<int64_t>(a.keep * T));
      pairs = a.keep - a.keep * a.keep / 2;
    }
    if (a.mixer == "moh") spec.active_rows = at::rand({B, H, T}) < a.keep, pairs = 0.5 * a.keep;
    at::Tensor key_bias;  // DMA: a random δ per key and each query's top-w of it, w = keep·T
    if (a.mixer == "dma") {
      const int64_t w = std::max<int64_t>(1, static_cast<int64_t>(a.keep * T));
      key_bias = at::randn({B, Hkv, T}, o);
      const double sel = median_ms([&] { spec.key_until = layers::top_keys_until(key_bias, spec, w); }, a.reps);
      fmt::print("| {} | dma top-{} key selection | {:.1f} | | | |\n", T, w, sel);
      pairs = a.keep - a.keep * a.keep / 2;
    }
    if (a.mixer == "ssa") {  // 16-key blocks, drawn per run of 32 queries (nearby queries pick alike)
      spec.keep_block = 16, spec.key_tile = 16, spec.query_tile = 32;
      spec.keep = (at::rand({B, Hkv, (T + 31) / 32, 1, (T + 15) / 16}) < a.keep)
                      .expand({B, Hkv, (T + 31) / 32, 32, (T + 15) / 16})
                      .reshape({B, Hkv, -1, (T + 15) / 16})
                      .narrow(2, 0, T);
      pairs = 0.5 * a.keep;
    }
    auto time = [&](const kernels::AttentionSpec& s) {
      const at::Tensor kb = s.key_until.defined() ? key_bias : at::Tensor();
      tools::MemoryWindow memory;
      const double f = median_ms([&] { at::NoGradGuard ng; kernels::attention_fused(q, k, v, kb, s); }, a.reps);
      const double fb = median_ms([&] { kernels::attention_fused(qg, kg, vg, kb, s).sum().backward(); }, a.reps);
      return std::tuple{f, fb, memory.extra_mb()};
    };
    const auto [df, db, dmb] = time(dense);
    fmt::print("| {} | softmax (SDPA) | {:.1f} | {:.1f} | 1.00x | 0.50 |\n", T, sf, sb);
    tools::add_bench_row(a.mixer, "softmax (SDPA)", T, B * T, sf, sb, sdpa_mb);
    tools::add_bench_row(a.mixer, "softmax fused", T, B * T, df, db, dmb);
    fmt::print("| {} | softmax fused | {:.1f} | {:.1f} | {:.2f}x | 0.50 |\n", T, df, db, sb / db);
    if (a.mixer != "softmax") {
      const auto [mf, mb, mmb] = time(spec);
      fmt::print("| {} | {} fused | {:.1f} | {:.1f} | {:.2f}x | {:.2f} |\n", T, a.mixer, mf, mb, sb / mb, pairs);
      tools::add_bench_row(a.mixer, a.mixer + " fused", T, B * T, mf, mb, mmb);
    }
  }
  fmt::print("\nvs SDPA > 1 means faster than SDPA. visible pairs: the fraction of the T x T (query, key) pairs\n"
             "the spec lets through (causal dense = 0.50).\n");
  return 0;
}

}  // namespace attnlab::cli
