// attnlab bench mixer: times the linear-attention kernel family (the softmax family:
// cmd_bench_attention.cpp; titans and grassmann as whole layers: bench_layer.cpp) (every implementation) at a
// mixer's head shapes, forward and forward+backward, next to softmax attention (SDPA) at the
// same shapes, and reports ratios measured in the same run plus how time grows with T.
#include <ATen/TensorOperators.h>
#include <ATen/ops/log_sigmoid.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <ATen/ops/tensor.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <map>

#include "framework/util/atomic_file.h"
#include "kernels/linear/api.h"
#include "tools/attnlab/bench_attention.h"
#include "tools/attnlab/bench_layer.h"
#include "tools/attnlab/commands.h"
#include "tools/common/bench_rows.h"
#include "tools/common/median_time.h"
#include "tools/common/memory_meter.h"

namespace attnlab::cli {
namespace {
using tools::median_ms;

struct BenchArgs {
  std::string mixer = "gla";
  std::vector<int64_t> seq = {1024, 4096, 16384};
  std::vector<std::string> kernels = {"chunked", "fused"};
  int64_t batch = 1, heads = 4, kv_heads = 0, head_dim = 64, reps = 3, chunk = 64, sub_chunk = 16;
  double keep = 0.1;
  int64_t dim = 256;
  std::string options = "{}";
  std::string jsonl;  ///< also write the rows here (tools/common/bench_rows.h)
};

void write_rows(const std::string& path) {
  std::string text;
  for (const tools::BenchRow& r : tools::bench_rows())
    text += nlohmann::json{{"mixer", r.mixer}, {"impl", r.impl}, {"seq", r.seq}, {"tokens", r.tokens},
                           {"fwd_ms", r.fwd_ms}, {"fwd_bwd_ms", r.fwd_bwd_ms}, {"peak_mb", r.peak_mb}}
                .dump() + "\n";
  write_file_atomic(path, text);
  fmt::print("wrote {} rows to {} (attnlab report --bench {})\n", tools::bench_rows().size(), path, path);
}

int run_bench(const BenchArgs& a) {
  tools::install_cpu_memory_meter();  // before the inputs, so every row's window sees them live
  // Gate mode and value width per mixer: GLA per-channel gate, Lightning one decay per head,
  // Hedgehog no gate and a ones column for the normaliser.
  if (is_layer_bench(a.mixer)) return run_layer_bench({a.mixer, a.options, a.seq, a.batch, a.dim, a.reps});
  if (is_attention_bench(a.mixer))
    return run_attention_bench({a.mixer, a.seq, a.batch, a.heads, a.kv_heads, a.head_dim, a.reps, a.keep});
  if (a.mixer != "gla" && a.mixer != "lightning" && a.mixer != "hedgehog") {
    fmt::print(stderr, "bench mixer: --mixer must be gla | lightning | hedgehog | softmax | sigmoid | swa | dma | moh | ssa | titans | grassmann, got '{}'\n", a.mixer);
    return 2;
  }
  const int64_t B = a.batch, H = a.heads, d = a.head_dim, dv = a.mixer == "hedgehog" ? d + 1 : d;
  fmt::print("bench mixer {}: B={} H={} dk={} dv={} chunk={}/{} fp32 on CPU ({} threads), median of {}\n\n",
             a.mixer, B, H, d, dv, a.chunk, a.sub_chunk, at::get_num_threads(), a.reps);
  fmt::print("| T | impl | fwd ms | fwd+bwd ms | fwd+bwd vs {} | fwd+bwd µs/token |\n|---|---|---|---|---|---|\n",
             a.kernels.front());
  std::map<std::string, std::vector<double>> fb_times;
  for (int64_t T : a.seq) {
    auto o = at::TensorOptions().dtype(at::kFloat);
    at::Tensor q = at::randn({B, H, T, d}, o), k = at::randn({B, H, T, d}, o), v = at::randn({B, H, T, dv}, o);
    at::Tensor g;
    if (a.mixer == "gla") g = at::log_sigmoid(at::randn({B, H, T, d}, o)) / 16;
    if (a.mixer == "lightning") g = -at::tensor(std::vector<double>(H, 0.05), o.dtype(at::kDouble)).to(at::kFloat);
    auto leaf = [](const at::Tensor& t) { return t.defined() ? t.detach().requires_grad_(true) : t; };
    at::Tensor qg = leaf(q), kg = leaf(k), vg = leaf(v), gg = a.mixer == "gla" ? leaf(g) : g;
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    std::vector<std::pair<std::string, std::pair<double, double>>> rows;
    for (const auto& name : a.kernels) {
      if (name == "reference" && T > 2048) continue;  // O(T² dk) memory
      kernels::LinearAttentionOptions lo;
      lo.scale = scale, lo.kernel = name, lo.chunk_size = a.chunk, lo.sub_chunk = a.sub_chunk;
      const tools::MemoryWindow mem;
      const double f = median_ms([&] { at::NoGradGuard ng; kernels::linear_attention(q, k, v, g, {}, lo); }, a.reps);
      const double fb = median_ms([&] { kernels::linear_attention(qg, kg, vg, gg, {}, lo).out.sum().backward(); }, a.reps);
      rows.push_back({name, {f, fb}});
      fb_times[name].push_back(fb);
      tools::add_bench_row(a.mixer, name, T, B * T, f, fb, mem.extra_mb());
    }
    at::Tensor vs = v.narrow(3, 0, d).contiguous(), vsg = leaf(vs);
    const tools::MemoryWindow sdpa_mem;
    const double sf = median_ms([&] { at::NoGradGuard ng; at::scaled_dot_product_attention(q, k, vs, {}, 0.0, true, scale); }, a.reps);
    const double sb = median_ms([&] { at::scaled_dot_product_attention(qg, kg, vsg, {}, 0.0, true, scale).sum().backward(); }, a.reps);
    rows.push_back({"softmax (SDPA)", {sf, sb}});
    tools::add_bench_row(a.mixer, "softmax (SDPA)", T, B * T, sf, sb, sdpa_mem.extra_mb());
    fb_times["softmax (SDPA)"].push_back(sb);
    const double base = rows.front().second.second;
    for (const auto& [name, t] : rows)
      fmt::print("| {} | {} | {:.1f} | {:.1f} | {:.2f}x | {:.2f} |\n", T, name, t.first, t.second,
                 base / t.second, 1e3 * t.second / static_cast<double>(B * T));
  }
  if (a.seq.size() > 1) {
    const double tokens = static_cast<double>(a.seq.back()) / static_cast<double>(a.seq.front());
    fmt::print("\nGrowth from T={} to T={} ({:.0f}x the tokens), forward+backward:\n", a.seq.front(), a.seq.back(), tokens);
    for (const auto& [name, t] : fb_times)
      if (t.size() == a.seq.size()) fmt::print("  {}: {:.1f}x the time\n", name, t.back() / t.front());
  }
  return 0;
}
}  // namespace

void add_bench_mixer(CLI::App& bench, Action& action) {
  auto* cmd = bench.add_subcommand("mixer", "time the linear-attention kernels of a mixer vs SDPA");
  auto a = std::make_shared<BenchArgs>();
  cmd->add_option("--mixer", a->mixer,
                  "gla | lightning | hedgehog (linear kernels), softmax | sigmoid | swa | dma | moh | ssa (attention kernel), "
                  "titans | grassmann (the whole layer next to gla and softmax)");
  cmd->add_option("--seq", a->seq, "sequence lengths")->delimiter(',');
  cmd->add_option("--kernels", a->kernels, "implementations; the first is the ratio baseline")->delimiter(',');
  cmd->add_option("--batch", a->batch, "batch size")->check(CLI::PositiveNumber);
  cmd->add_option("--heads", a->heads, "heads")->check(CLI::PositiveNumber);
  cmd->add_option("--head-dim", a->head_dim, "per-head width")->check(CLI::PositiveNumber);
  cmd->add_option("--kv-heads", a->kv_heads, "attention: key/value heads (0 = heads)");
  cmd->add_option("--keep", a->keep, "attention: share kept by the sparsity (window/T, keys, rows, blocks)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--chunk", a->chunk, "chunk size C")->check(CLI::PositiveNumber);
  cmd->add_option("--sub-chunk", a->sub_chunk, "sub-chunk size c")->check(CLI::PositiveNumber);
  cmd->add_option("--dim", a->dim, "layer benchmark (titans, grassmann): model width")->check(CLI::PositiveNumber);
  cmd->add_option("--options", a->options, "layer benchmark: the mixer's options as a YAML mapping, e.g. '{architecture: mag}'");
  cmd->add_option("--reps", a->reps, "timed repetitions (median reported)")->check(CLI::PositiveNumber);
  cmd->add_option("--jsonl", a->jsonl, "also write one JSON line per timed row (for attnlab report --bench)");
  cmd->callback([a, &action] {
    action = [a] {
      const int rc = run_bench(*a);
      if (rc == 0 && !a->jsonl.empty()) write_rows(a->jsonl);
      return rc;
    };
  });
}

}  // namespace attnlab::cli
