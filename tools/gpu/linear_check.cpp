// linear_check: checks every linear-attention implementation on the current device against the
// CPU float64 fused kernel (itself tested against the reference in tests/kernels), for
// outputs, final state and all gradients, then times forward and forward+backward next to
// SDPA at the same shapes. Prints markdown (tools/gpu/check.sh puts it in docs/benchmarks.md).
// Exit code 1 when any check fails. Usage: linear_check [--quick]
#include <ATen/TensorOperators.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/log_sigmoid.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <ATen/Context.h>
#include <c10/core/Device.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/linear/api.h"
#include "tools/gpu/check_common.h"

using namespace attnlab::kernels;
using attnlab::gpu_check::rel_rms;
using attnlab::gpu_check::time_ms;

namespace {
struct Result {
  std::vector<at::Tensor> tensors;  // out, state, dq, dk, dv, dg, ds0
};

Result run(const std::vector<at::Tensor>& in, const at::Tensor& w_out, const at::Tensor& w_state,
           const LinearAttentionOptions& o) {
  std::vector<at::Tensor> x;
  for (const auto& t : in) x.push_back(t.detach().clone().requires_grad_(true));
  auto r = linear_attention(x[0], x[1], x[2], x[3], x[4], o);
  ((r.out.to(at::kFloat) * w_out).sum() + (r.final_state * w_state).sum()).backward();
  return {{r.out, r.final_state, x[0].grad(), x[1].grad(), x[2].grad(), x[3].grad(), x[4].grad()}};
}

/// Compares `kernel` on `device`/`dtype` with the CPU fp64 fused kernel; returns worst error.
bool check(const at::Device& device, at::ScalarType dtype, const std::string& kernel, int64_t T,
           double tol) {
  at::manual_seed(T);
  const int64_t B = 2, H = 3, dk = 64, dv = 48;
  auto cpu64 = at::TensorOptions().dtype(at::kDouble);
  std::vector<at::Tensor> x = {at::randn({B, H, T, dk}, cpu64), at::randn({B, H, T, dk}, cpu64),
                               at::randn({B, H, T, dv}, cpu64),
                               at::log_sigmoid(at::randn({B, H, T, dk}, cpu64) * 3) / 4,
                               at::randn({B, H, dk, dv}, cpu64)};
  // Round the inputs to the tested dtype first, so the reference sees the same numbers.
  for (size_t i = 0; i < 3; ++i) x[i] = x[i].to(dtype).to(at::kDouble);
  at::Tensor w_out = at::randn({B, H, T, dv}, cpu64), w_state = at::randn({B, H, dk, dv}, cpu64);
  LinearAttentionOptions o;
  o.scale = 0.125, o.kernel = "fused";
  const Result ref = run(x, w_out, w_state, o);
  std::vector<at::Tensor> xd;
  for (size_t i = 0; i < x.size(); ++i)
    xd.push_back(x[i].to(device, i < 3 ? dtype : at::kFloat));
  o.kernel = kernel;
  const Result got = run(xd, w_out.to(device, at::kFloat), w_state.to(device, at::kFloat), o);
  const char* names[] = {"out", "state", "dq", "dk", "dv", "dg", "dS0"};
  double worst = 0;
  bool finite = true;
  for (size_t i = 0; i < ref.tensors.size(); ++i) {
    worst = std::max(worst, rel_rms(ref.tensors[i], got.tensors[i]));
    finite = finite && at::isfinite(got.tensors[i]).all().item<bool>();
    (void)names;
  }
  const bool ok = finite && worst <= tol;
  std::printf("| %s | %s | %s | %lld | %.2e | %.0e | %s |\n", device.str().c_str(), c10::toString(dtype),
              kernel.c_str(), static_cast<long long>(T), worst, tol, ok ? "pass" : "FAIL");
  return ok;
}

void bench(const at::Device& device, at::ScalarType dtype, int64_t B, int64_t H, int64_t d,
           const std::vector<int64_t>& lengths, const std::vector<std::string>& kernels, int reps) {
  std::printf("\n%s, %s, B=%lld H=%lld dk=dv=%lld, GLA vector gate; median of %d, ms\n\n", device.str().c_str(),
              c10::toString(dtype), (long long)B, (long long)H, (long long)d, reps);
  std::printf("| T | impl | fwd ms | fwd+bwd ms | fwd+bwd vs SDPA |\n|---|---|---|---|---|\n");
  for (int64_t T : lengths) {
    auto o = at::TensorOptions().dtype(dtype).device(device);
    at::Tensor q = at::randn({B, H, T, d}, o), k = at::randn({B, H, T, d}, o), v = at::randn({B, H, T, d}, o);
    at::Tensor g = (at::log_sigmoid(at::randn({B, H, T, d}, o.dtype(at::kFloat))) / 16);
    auto grad = [](at::Tensor t) { return t.requires_grad_(true); };
    at::Tensor qg = grad(q.clone()), kg = grad(k.clone()), vg = grad(v.clone()), gg = grad(g.clone());
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    auto sdpa_f = [&] { at::NoGradGuard ng; at::scaled_dot_product_attention(q, k, v, {}, 0.0, true, scale); };
    auto sdpa_b = [&] { at::scaled_dot_product_attention(qg, kg, vg, {}, 0.0, true, scale).sum().backward(); };
    const double sf = time_ms(device, sdpa_f, reps), sb = time_ms(device, sdpa_b, reps);
    std::printf("| %lld | SDPA (softmax) | %.2f | %.2f | 1.00 |\n", (long long)T, sf, sb);
    for (const auto& kname : kernels) {
      LinearAttentionOptions lo;
      lo.scale = scale, lo.kernel = kname;
      auto f = [&] { at::NoGradGuard ng; linear_attention(q, k, v, g, {}, lo); };
      auto b = [&] { linear_attention(qg, kg, vg, gg, {}, lo).out.sum().backward(); };
      const double tf = time_ms(device, f, reps), tb = time_ms(device, b, reps);
      std::printf("| %lld | %s | %.2f | %.2f | %.2f |\n", (long long)T, kname.c_str(), tf, tb, sb / tb);
    }
  }
}
}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const bool cuda = linear_cuda_available() && at::hasCUDA();
  const at::Device device = cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  std::printf("## linear-attention check on %s (CUDA kernels compiled: %s)\n\n", device.str().c_str(),
              linear_cuda_available() ? "yes" : "no");
  std::printf("| device | dtype | kernel | T | worst rel RMS (out, state, dq, dk, dv, dg, dS0) | tol | |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  bool ok = true;
  for (int64_t T : {1, 63, 65, 200, 1000}) {
    ok &= check(device, at::kFloat, "chunked", T, 1e-5);
    ok &= check(device, at::kFloat, "fused", T, 1e-5);
    if (cuda) ok &= check(device, at::kBFloat16, "fused", T, 5e-3);
    if (cuda) ok &= check(device, at::kHalf, "fused", T, 5e-3);
  }
  if (quick) return ok ? 0 : 1;
  if (cuda) {
    bench(device, at::kBFloat16, 8, 16, 64, {1024, 4096, 16384}, {"chunked", "fused"}, 10);
  } else {
    bench(device, at::kFloat, 1, 4, 64, {1024, 4096}, {"chunked", "fused"}, 3);
  }
  return ok ? 0 : 1;
}
