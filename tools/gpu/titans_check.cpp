// titans_check: checks the fused Titans memory (`memory_fused`, the batched engine off the CPU)
// on the current device against the CPU engine in float64 (itself checked against the torch dual
// form and the token loop in tests/kernels), for the output, the end state and every gradient
// (q, k, v, θ, α, η, W0, S0), then times it next to the torch dual form (`kernel: chunked`, what
// `auto` runs on CUDA until this check has passed) at the layer's default shapes. Prints markdown
// (tools/gpu/check.sh saves it as $OUT/titans_check.md). Exit code 1 when any check fails.
// Usage: titans_check [--quick]
#include <ATen/TensorOperators.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>
#include <c10/core/Device.h>
#include <torch/autograd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/titans/dual.h"
#include "kernels/titans/fused.h"
#include "tools/gpu/check_common.h"

using namespace attnlab::kernels;
using attnlab::gpu_check::rel_rms;
using attnlab::gpu_check::time_ms;

namespace {

struct Shape {
  int64_t B, H, N, d, expansion, layers, chunk;
  double max_grad_norm;
};

/// The memory's inputs as the layer makes them: unit q and k, θ in (0, θ_max), α, η in (0, 1).
struct Inputs {
  std::vector<at::Tensor> leaves;  ///< q, k, v, θ, α, η, W0 per layer, S0 per layer
  size_t layers = 0;
};

Inputs random_inputs(const Shape& s, const at::TensorOptions& o) {
  auto unit = [](const at::Tensor& x) { return x / x.norm(2, -1, true); };
  Inputs in;
  in.layers = static_cast<size_t>(s.layers);
  in.leaves = {unit(at::randn({s.B, s.H, s.N, s.d}, o)), unit(at::randn({s.B, s.H, s.N, s.d}, o)),
               at::randn({s.B, s.H, s.N, s.d}, o), 0.1 * at::rand({s.B, s.H, s.N}, o),
               0.05 * at::rand({s.B, s.H, s.N}, o), at::rand({s.B, s.H, s.N}, o)};
  for (int64_t l = 0; l < s.layers; ++l) {
    const int64_t a = l == 0 ? s.d : s.d * s.expansion, b = l + 1 == s.layers ? s.d : s.d * s.expansion;
    in.leaves.push_back(at::randn({s.H, a, b}, o) / std::sqrt(static_cast<double>(a)));
  }
  for (int64_t l = 0; l < s.layers; ++l) {
    const at::Tensor& w = in.leaves[6 + l];
    in.leaves.push_back(0.01 * at::randn({s.B, s.H, w.size(1), w.size(2)}, o));
  }
  return in;
}

MemorySpec spec_of(const Shape& s) {
  MemorySpec spec;
  spec.chunk = s.chunk, spec.loss_scale = 1.0 / static_cast<double>(s.d), spec.max_grad_norm = s.max_grad_norm;
  return spec;
}

/// y, the end state and the gradients of a fixed random linear function of both, from `kernel`
/// on `device` in `dtype` (the inputs converted from the float64 ones given).
std::vector<at::Tensor> run(MemoryKernel kernel, const Inputs& raw, const Shape& sh, const at::Device& device,
                            at::ScalarType dtype, bool backward) {
  std::vector<at::Tensor> x;
  for (const at::Tensor& t : raw.leaves) x.push_back(t.detach().to(device, dtype).requires_grad_(backward));
  const size_t L = raw.layers;
  MemoryState s = initial_memory_state(std::vector<at::Tensor>(x.begin() + 6, x.begin() + 6 + L), sh.B, dtype);
  for (size_t l = 0; l < L; ++l) s.momentum[l] = x[6 + L + l];
  auto [y, end] = kernel(x[0], x[1], x[2], x[3], x[4], x[5], s, spec_of(sh));
  std::vector<at::Tensor> out{y};
  for (size_t l = 0; l < L; ++l) out.push_back(end.weights[l]), out.push_back(end.momentum[l]);
  if (!backward) return out;
  at::manual_seed(11);
  at::Tensor loss = at::zeros({}, y.options());
  for (const at::Tensor& o : out) loss = loss + (o * at::randn(o.sizes(), at::kDouble).to(o.device(), o.scalar_type())).sum();
  for (const at::Tensor& g : torch::autograd::grad({loss}, x)) out.push_back(g);
  return out;
}

bool check(const at::Device& device, const Shape& sh, double tol) {
  at::manual_seed(sh.N * 7 + sh.layers);
  const Inputs in = random_inputs(sh, at::TensorOptions().dtype(at::kDouble));
  const auto ref = run(memory_fused, in, sh, at::Device(at::kCPU), at::kDouble, true);
  bool ok = true;
  const std::pair<const char*, MemoryKernel> impls[] = {{"fused", memory_fused}, {"chunked (torch dual form)", memory_dual}};
  for (auto [name, kernel] : impls) {
    const auto got = run(kernel, in, sh, device, at::kFloat, true);
    double worst = 0;
    size_t worst_at = 0;
    bool finite = true;
    for (size_t i = 0; i < ref.size(); ++i) {
      const double e = rel_rms(ref[i], got[i]);
      if (e > worst) worst = e, worst_at = i;
      finite = finite && at::isfinite(got[i]).all().item<bool>();
    }
    const bool pass = finite && worst <= tol;
    if (std::strcmp(name, "fused") == 0) ok = pass;  // the dual form's row is the yardstick
    std::printf("| %s | %s | B%lld H%lld N%lld d%lld x%lld L%lld b%lld clamp %.1f | %.2e (output %zu of %zu) | %.0e | %s |\n",
                device.str().c_str(), name, (long long)sh.B, (long long)sh.H, (long long)sh.N, (long long)sh.d,
                (long long)sh.expansion, (long long)sh.layers, (long long)sh.chunk, sh.max_grad_norm, worst, worst_at,
                ref.size(), tol, pass ? "pass" : "FAIL");
  }
  return ok;
}

void bench(const at::Device& device, const Shape& base, const std::vector<int64_t>& lengths, int reps) {
  std::printf("\n%s, fp32, B=%lld H=%lld d=%lld expansion %lld, L_M=%lld, chunk %lld; median of %d\n\n",
              device.str().c_str(), (long long)base.B, (long long)base.H, (long long)base.d, (long long)base.expansion,
              (long long)base.layers, (long long)base.chunk, reps);
  std::printf("| T | impl | fwd ms | fwd+bwd ms | fwd+bwd tokens/s | fwd+bwd vs chunked |\n|---|---|---|---|---|---|\n");
  for (int64_t T : lengths) {
    Shape sh = base;
    sh.N = T;
    const Inputs in = random_inputs(sh, at::TensorOptions().dtype(at::kFloat).device(device));
    double chunked_fb = 0;
    std::vector<std::pair<const char*, MemoryKernel>> impls = {{"chunked", memory_dual}, {"fused", memory_fused}};
    if (!device.is_cuda()) impls.emplace_back("fused, batched engine", memory_fused_batched);
    for (auto [name, kernel] : impls) {
      const double f = time_ms(device, [&] { at::NoGradGuard ng; run(kernel, in, sh, device, at::kFloat, false); }, reps);
      const double fb = time_ms(device, [&] { run(kernel, in, sh, device, at::kFloat, true); }, reps);
      if (chunked_fb == 0) chunked_fb = fb;
      std::printf("| %lld | %s | %.2f | %.2f | %.0f | %.2fx |\n", (long long)T, name, f, fb, sh.B * T / (fb * 1e-3),
                  chunked_fb / fb);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const bool cuda = at::hasCUDA();
  const at::Device device = cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  std::printf("## titans memory check on %s (fused there: %s engine)\n\n", device.str().c_str(),
              cuda ? "batched" : "cpu");
  std::printf("| device | impl | shape | worst rel RMS against CPU fp64 (y, W/S end, grads) | tol | |\n");
  std::printf("|---|---|---|---|---|---|\n");
  bool ok = true;
  const Shape shapes[] = {{2, 3, 37, 8, 2, 2, 8, 0}, {2, 3, 37, 8, 2, 3, 5, 0.3}, {1, 4, 300, 16, 4, 2, 64, 2.0},
                          {2, 2, 130, 32, 2, 1, 16, 0}};
  for (const Shape& sh : shapes) ok &= check(device, sh, 1e-4);
  std::printf("\ntitans check: %s\n", ok ? "all pass" : "FAILURES above");
  if (quick) return ok ? 0 : 1;
  const Shape layer{1, 4, 0, 64, 4, 2, 64, 2.0};  // the titans preset at model.dim 256 (configs/mixers/titans.yaml)
  if (cuda)
    bench(device, Shape{8, 4, 0, 64, 4, 2, 64, 2.0}, {1024, 4096, 16384}, 5);
  else
    bench(device, layer, {1024}, 3);
  return ok ? 0 : 1;
}
