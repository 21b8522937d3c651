// attention_check: checks the tiled softmax-family attention (`attention_fused`) on the current
// device against the plain-torch reference in float64 on the CPU (itself the oracle of
// tests/kernels), for the output and every gradient (q, k, v, key_bias), over each mask of
// AttentionSpec, then times it next to SDPA at the same shapes. Prints markdown
// (tools/gpu/check.sh saves it as $OUT/attention_check.md, for docs/benchmarks.md). Exit code 1 when any check fails.
// Usage: attention_check [--quick]
#include <ATen/Context.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <c10/core/Device.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "kernels/attention/fused_cpu.h"
#include "kernels/attention/fused_cuda.h"
#include "kernels/attention/reference.h"
#include "tools/gpu/check_common.h"

using namespace attnlab::kernels;
using attnlab::gpu_check::rel_rms;
using attnlab::gpu_check::time_ms;

namespace {

/// One mask of the spec, built for q [B, H, Tq, ·] and k [B, Hkv, Tk, ·] (CPU tensors).
struct Case {
  const char* name;
  bool bias;  ///< with a per-key bias (DMA's δ)
  std::function<void(AttentionSpec&, int64_t B, int64_t H, int64_t Hkv, int64_t Tq, int64_t Tk)> make;
};

std::vector<Case> cases() {
  return {
      {"causal softmax", false, [](AttentionSpec&, int64_t, int64_t, int64_t, int64_t, int64_t) {}},
      {"sigmoid", false,
       [](AttentionSpec& s, int64_t, int64_t, int64_t, int64_t, int64_t Tk) {
         s.transform = ScoreTransform::sigmoid, s.sigmoid_bias = -std::log(static_cast<double>(std::max<int64_t>(Tk, 2)));
       }},
      {"window 7 + 2 sinks", false,
       [](AttentionSpec& s, int64_t, int64_t, int64_t, int64_t, int64_t) { s.window = 7, s.sinks = 2; }},
      {"documents", false,
       [](AttentionSpec& s, int64_t B, int64_t, int64_t, int64_t Tq, int64_t Tk) {
         at::Tensor doc = (at::arange(Tk, at::kLong) / 23).unsqueeze(0).repeat({B, 1});
         s.k_doc = doc, s.q_doc = doc.narrow(1, Tk - Tq, Tq).contiguous();
       }},
      {"keep blocks of 8 (SSA)", false,
       [](AttentionSpec& s, int64_t B, int64_t, int64_t Hkv, int64_t Tq, int64_t Tk) {
         s.keep_block = 8, s.keep = at::rand({B, Hkv, Tq, (Tk + 7) / 8}) < 0.4;
       }},
      {"key_until + bias (DMA)", true,
       [](AttentionSpec& s, int64_t B, int64_t, int64_t Hkv, int64_t, int64_t Tk) {
         s.key_until = at::arange(Tk, at::kLong).view({1, 1, Tk}) + at::randint(1, 40, {B, Hkv, Tk}, at::kLong);
       }},
      {"active rows (MoH)", false,
       [](AttentionSpec& s, int64_t B, int64_t H, int64_t, int64_t Tq, int64_t) {
         s.active_rows = at::rand({B, H, Tq}) < 0.6;
       }},
  };
}

/// The spec's tensors on `device`.
AttentionSpec on(const AttentionSpec& s, const at::Device& device) {
  AttentionSpec r = s;
  for (at::Tensor* t : {&r.q_pos, &r.k_pos, &r.q_doc, &r.k_doc, &r.keep, &r.key_until, &r.active_rows})
    if (t->defined()) *t = t->to(device);
  return r;
}

/// Output and gradients (q, k, v, key_bias) of sum(out · w).
std::vector<at::Tensor> run(const std::vector<at::Tensor>& in, const at::Tensor& w, const AttentionSpec& s, bool fused) {
  std::vector<at::Tensor> x;
  for (const auto& t : in) x.push_back(t.defined() ? t.detach().clone().requires_grad_(true) : t);
  at::Tensor o = fused ? attention_fused(x[0], x[1], x[2], x[3], s) : attention_reference(x[0], x[1], x[2], x[3], s);
  (o.to(w.scalar_type()) * w).sum().backward();
  std::vector<at::Tensor> r = {o, x[0].grad(), x[1].grad(), x[2].grad()};
  if (x[3].defined()) r.push_back(x[3].grad());
  return r;
}

bool check(const at::Device& device, at::ScalarType dtype, const Case& c, int64_t Tq, int64_t Tk, int64_t d,
           int64_t Hkv, double tol) {
  at::manual_seed(Tq * 1000 + Tk + d);
  const int64_t B = 2, H = 4;
  auto cpu64 = at::TensorOptions().dtype(at::kDouble);
  std::vector<at::Tensor> x = {at::randn({B, H, Tq, d}, cpu64), at::randn({B, Hkv, Tk, d}, cpu64),
                               at::randn({B, Hkv, Tk, d}, cpu64),
                               c.bias ? at::randn({B, Hkv, Tk}, cpu64) : at::Tensor()};
  for (size_t i = 0; i < 3; ++i) x[i] = x[i].to(dtype).to(at::kDouble);  // the reference sees the same numbers
  AttentionSpec s;
  s.scale = 1.0 / std::sqrt(static_cast<double>(d));
  c.make(s, B, H, Hkv, Tq, Tk);
  const at::Tensor w = at::randn({B, H, Tq, d}, cpu64);
  const auto ref = run(x, w, s, /*fused=*/false);
  std::vector<at::Tensor> xd;
  for (size_t i = 0; i < x.size(); ++i)
    xd.push_back(x[i].defined() ? x[i].to(device, i < 3 ? dtype : at::kFloat) : x[i]);
  const auto got = run(xd, w.to(device, at::kFloat), on(s, device), /*fused=*/true);
  double worst = 0;
  std::string worst_name;
  bool finite = true;
  const char* names[] = {"out", "dq", "dk", "dv", "dbias"};
  for (size_t i = 0; i < ref.size(); ++i) {
    const double e = rel_rms(ref[i], got[i]);
    if (e > worst) worst = e, worst_name = names[i];
    finite = finite && at::isfinite(got[i]).all().item<bool>();
  }
  const bool ok = finite && worst <= tol;
  std::printf("| %s | %s | %s | %lld x %lld | %lld | %lld/%lld | %.2e (%s) | %.0e | %s |\n", device.str().c_str(),
              c10::toString(dtype), c.name, (long long)Tq, (long long)Tk, (long long)d, (long long)H, (long long)Hkv,
              worst, worst_name.c_str(), tol, ok ? "pass" : "FAIL");
  return ok;
}

/// Measured GEMM throughput (TFLOP/s) of an n × n × n matmul in `dtype`: the denominator the
/// attention FLOP/s are read against.
double gemm_tflops(const at::Device& device, at::ScalarType dtype, int64_t n) {
  auto o = at::TensorOptions().dtype(dtype).device(device);
  at::Tensor a = at::randn({n, n}, o), b = at::randn({n, n}, o);
  const double ms = time_ms(device, [&] { at::matmul(a, b); }, 10);
  return 2.0 * n * n * n / (ms * 1e-3) / 1e12;
}

void bench(const at::Device& device, at::ScalarType dtype, int64_t B, int64_t H, int64_t d,
           const std::vector<int64_t>& lengths, int reps) {
  const double peak = gemm_tflops(device, dtype, device.is_cuda() ? 8192 : 1024);
  std::printf("\n%s, %s, B=%lld H=%lld d=%lld; median of %d, ms; measured %s GEMM: %.3g TFLOP/s\n\n",
              device.str().c_str(), c10::toString(dtype), (long long)B, (long long)H, (long long)d, reps,
              c10::toString(dtype), peak);
  std::printf("| T | impl | fwd ms | fwd+bwd ms | fwd+bwd vs SDPA | fwd TFLOP/s (of GEMM) |\n|---|---|---|---|---|---|\n");
  for (int64_t T : lengths) {
    auto o = at::TensorOptions().dtype(dtype).device(device);
    at::Tensor q = at::randn({B, H, T, d}, o), k = at::randn({B, H, T, d}, o), v = at::randn({B, H, T, d}, o);
    auto grad = [](at::Tensor t) { return t.requires_grad_(true); };
    at::Tensor qg = grad(q.clone()), kg = grad(k.clone()), vg = grad(v.clone());
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    auto row = [&](const char* name, double pairs, double f, double fb, double sdpa_fb) {
      const double tflops = 4.0 * B * H * d * pairs * T * T / (f * 1e-3) / 1e12;
      std::printf("| %lld | %s | %.2f | %.2f | %.2f | %.3g (%.0f%%) |\n", (long long)T, name, f, fb, sdpa_fb / fb,
                  tflops, 100 * tflops / peak);
    };
    const double sf = time_ms(device, [&] { at::NoGradGuard ng; at::scaled_dot_product_attention(q, k, v, {}, 0.0, true, scale); }, reps);
    const double sb = time_ms(device, [&] { at::scaled_dot_product_attention(qg, kg, vg, {}, 0.0, true, scale).sum().backward(); }, reps);
    row("SDPA (causal)", 0.5, sf, sb, sb);
    AttentionSpec dense, sig, swa;
    dense.scale = sig.scale = swa.scale = scale;
    sig.transform = ScoreTransform::sigmoid, sig.sigmoid_bias = -std::log(static_cast<double>(T));
    swa.window = std::max<int64_t>(1, T / 10);
    const std::pair<const char*, AttentionSpec> impls[] = {
        {"fused softmax", dense}, {"fused sigmoid", sig}, {"fused swa (window T/10)", swa}};
    for (const auto& [name, s] : impls) {
      const double f = time_ms(device, [&] { at::NoGradGuard ng; attention_fused(q, k, v, {}, s); }, reps);
      const double fb = time_ms(device, [&] { attention_fused(qg, kg, vg, {}, s).sum().backward(); }, reps);
      row(name, s.window ? 0.1 - 0.005 : 0.5, f, fb, sb);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const bool cuda = attention_cuda_compiled() && at::hasCUDA();
  const at::Device device = cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  std::printf("## softmax-family attention check on %s (CUDA kernels compiled: %s)\n\n", device.str().c_str(),
              attention_cuda_compiled() ? "yes" : "no");
  std::printf("| device | dtype | mask | Tq x Tk | d | H/Hkv | worst rel RMS (out, dq, dk, dv, dbias) | tol | |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  bool ok = true;
  struct Shape { int64_t Tq, Tk, d, Hkv; };
  const Shape shapes[] = {{1, 1, 64, 4}, {17, 17, 64, 2}, {65, 65, 16, 4}, {300, 300, 64, 1}, {5, 300, 128, 2}};
  std::vector<at::ScalarType> dtypes = {at::kFloat};
  if (cuda) dtypes.push_back(at::kBFloat16), dtypes.push_back(at::kHalf);
  for (const Case& c : cases())
    for (const Shape& sh : shapes)
      for (at::ScalarType dt : dtypes)
        ok &= check(device, dt, c, sh.Tq, sh.Tk, sh.d, sh.Hkv, dt == at::kFloat ? 2e-5 : dt == at::kHalf ? 5e-3 : 1.5e-2);
  std::printf("\nattention check: %s\n", ok ? "all pass" : "FAILURES above");
  if (quick) return ok ? 0 : 1;
  if (cuda) {
    bench(device, at::kBFloat16, 2, 16, 64, {1024, 4096, 16384}, 5);
  } else {
    bench(device, at::kFloat, 1, 4, 64, {1024}, 3);
  }
  return ok ? 0 : 1;
}
