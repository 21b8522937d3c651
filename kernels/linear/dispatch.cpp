// The one entry point of the linear-attention kernel family (api.h): input checks, gate
// expansion, `kernel: auto` resolution, and the autograd Function that wraps the fused
// forward/backward pair (CPU, or CUDA when compiled in).
#include <ATen/TensorOperators.h>
#include <ATen/ops/zeros.h>
#include <torch/autograd.h>

#ifdef ATTNLAB_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

#include <cstdio>
#include <mutex>
#include <set>

#include "kernels/common/check.h"
#include "kernels/linear/cuda_smem.h"
#include "kernels/linear/chunked.h"
#include "kernels/linear/fused.h"
#include "kernels/linear/reference.h"

namespace attnlab::kernels {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// Fused kernel dtypes: CPU computes in fp32/fp64 (inputs are converted); CUDA takes
/// fp32/bf16/fp16 directly with fp32 states.
at::ScalarType fused_compute_dtype(const at::Tensor& q) {
  if (q.is_cuda()) return q.scalar_type() == at::kDouble ? at::kFloat : q.scalar_type();
  return linear_state_dtype(q.scalar_type());
}

class FusedLinearAttention : public torch::autograd::Function<FusedLinearAttention> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                               const at::Tensor& v, const at::Tensor& g, const at::Tensor& s0,
                               double scale, int64_t chunk, int64_t sub_chunk) {
    const auto dt = fused_compute_dtype(q), state_dt = linear_state_dtype(dt);
    at::Tensor qc = q.to(dt).contiguous(), kc = k.to(dt).contiguous(), vc = v.to(dt).contiguous();
    at::Tensor gc = g.to(state_dt).contiguous(), s0c = s0.to(state_dt).contiguous();
    const FusedShape shape{scale, chunk, sub_chunk};
    LinearAttentionResult r;
#ifdef ATTNLAB_WITH_CUDA
    if (q.is_cuda()) r = fused_linear_attention_cuda_forward(qc, kc, vc, gc, s0c, shape);
    else
#endif
      r = fused_linear_attention_cpu_forward(qc, kc, vc, gc, s0c, shape);
    ctx->save_for_backward({qc, kc, vc, gc, s0c});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["sub_chunk"] = sub_chunk;
    ctx->saved_data["q_dtype"] = static_cast<int64_t>(q.scalar_type());
    return {r.out.to(q.scalar_type()), r.final_state};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &g = saved[3], &s0 = saved[4];
    const FusedShape shape{ctx->saved_data["scale"].toDouble(), ctx->saved_data["chunk"].toInt(),
                           ctx->saved_data["sub_chunk"].toInt()};
    at::Tensor dout = grads[0].defined() ? grads[0].to(q.scalar_type()).contiguous()
                                         : at::zeros_like(v);
    at::Tensor dstate = grads[1].defined() ? grads[1].to(g.scalar_type()).contiguous() : at::Tensor();
    LinearAttentionGrads d;
#ifdef ATTNLAB_WITH_CUDA
    if (q.is_cuda()) d = fused_linear_attention_cuda_backward(q, k, v, g, s0, dout, dstate, shape);
    else
#endif
      d = fused_linear_attention_cpu_backward(q, k, v, g, s0, dout, dstate, shape);
    const auto in_dtype = static_cast<at::ScalarType>(ctx->saved_data["q_dtype"].toInt());
    return {d.dq.to(in_dtype), d.dk.to(in_dtype), d.dv.to(in_dtype), d.dg, d.dstate0,
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

/// g as a [B, H, T, dk] log-gate: [H] is broadcast, undefined is a broadcast zero.
at::Tensor expand_log_gate(const at::Tensor& g, int64_t B, int64_t H, int64_t T, int64_t dk,
                           at::TensorOptions state_opts) {
  if (!g.defined()) return at::zeros({1, 1, 1, 1}, state_opts).expand({B, H, T, dk});
  if (g.dim() == 1) {
    ATTNLAB_CHECK_SHAPE(g, H);
    return g.to(state_opts.dtype()).view({1, H, 1, 1}).expand({B, H, T, dk});
  }
  ATTNLAB_CHECK_SHAPE(g, B, H, T, dk);
  return g;
}
}  // namespace

void check_linear_options(const LinearAttentionOptions& o) {
  ATTNLAB_CHECK(o.chunk_size > 0 && o.sub_chunk > 0 && o.chunk_size % o.sub_chunk == 0,
                "linear attention: sub_chunk (", o.sub_chunk, ") must divide chunk_size (",
                o.chunk_size, ")");
}

bool linear_cuda_available() {
#ifdef ATTNLAB_WITH_CUDA
  return true;
#else
  return false;
#endif
}

namespace {
// Per-block shared memory a kernel may opt in to on q's device (H100: 227 KB).
size_t cuda_smem_limit([[maybe_unused]] const at::Tensor& q) {
#ifdef ATTNLAB_WITH_CUDA
  return at::cuda::getDeviceProperties(q.get_device())->sharedMemPerBlockOptin;
#else
  return 0;
#endif
}

void warn_once(const std::string& message) {
  static std::mutex mu;
  static std::set<std::string> said;
  std::lock_guard<std::mutex> lock(mu);
  if (said.insert(message).second) std::fprintf(stderr, "note: %s\n", message.c_str());
}
}  // namespace

std::string resolve_linear_kernel(const at::Tensor& q, const std::string& kernel) {
  if (kernel != "auto") return kernel;
  if (!q.is_cuda()) return "fused";
  // The CUDA kernels are used by `auto` only once a device run has checked them against the
  // CPU reference (tools/gpu/check.sh); until then they must be asked for by name.
#if defined(ATTNLAB_WITH_CUDA) && defined(ATTNLAB_LINEAR_CUDA_VALIDATED)
  return "fused";
#else
  return "chunked";
#endif
}

LinearAttentionResult linear_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                       const at::Tensor& g_in, const at::Tensor& s0,
                                       const LinearAttentionOptions& o) {
  ATTNLAB_CHECK(q.dim() == 4 && v.dim() == 4, "linear attention: q must be [B, H, T, dk] and v ",
                "[B, H, T, dv], got ", q.sizes(), " and ", v.sizes());
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), dk = q.size(3), dv = v.size(3);
  ATTNLAB_CHECK_SHAPE(k, B, H, T, dk);
  ATTNLAB_CHECK_SHAPE(v, B, H, T, dv);
  if (s0.defined()) ATTNLAB_CHECK_SHAPE(s0, B, H, dk, dv);
  check_linear_options(o);
  const auto state_opts = q.options().dtype(linear_state_dtype(q.scalar_type()));
  at::Tensor g = expand_log_gate(g_in, B, H, T, dk, state_opts);
  if (T == 0)  // nothing to mix; the state passes through
    return {at::zeros({B, H, 0, dv}, q.options()),
            s0.defined() ? s0.to(state_opts.dtype()) : at::zeros({B, H, dk, dv}, state_opts)};
  const std::string kernel = resolve_linear_kernel(q, o.kernel);
  if (kernel == "reference") return linear_attention_parallel_reference(q, k, v, g, s0, o.scale);
  if (kernel == "recurrent") return linear_attention_recurrent_reference(q, k, v, g, s0, o.scale);
  if (kernel == "chunked")
    return linear_attention_chunked(q, k, v, g, s0, o.scale, o.chunk_size, o.sub_chunk);
  ATTNLAB_CHECK(kernel == "fused", "linear attention: unknown kernel '", kernel,
                "', expected auto | reference | recurrent | chunked | fused");
  ATTNLAB_CHECK(!q.is_cuda() || linear_cuda_available(),
                "linear attention: kernel 'fused' on CUDA needs a build with ATTNLAB_CUDA");
  if (q.is_cuda()) {
    // The launchers size shared memory from dk and C; refuse before the launch fails obscurely.
    const std::string problem = linear_cuda_smem_problem(dk, o.chunk_size, cuda_smem_limit(q));
    if (!problem.empty() && o.kernel == "auto") {
      warn_once(problem + "; using kernel chunked");
      return linear_attention_chunked(q, k, v, g, s0, o.scale, o.chunk_size, o.sub_chunk);
    }
    ATTNLAB_CHECK(problem.empty(), "linear attention: ", problem);
  }
  // Custom autograd Functions reject undefined tensor inputs: a missing state becomes zeros.
  at::Tensor state0 = s0.defined() ? s0
                                   : at::zeros({B, H, dk, dv}, q.options().dtype(linear_state_dtype(
                                                                   fused_compute_dtype(q))));
  auto outs = FusedLinearAttention::apply(q, k, v, g, state0, o.scale, o.chunk_size, o.sub_chunk);
  return {outs[0], outs[1]};
}

}  // namespace attnlab::kernels
