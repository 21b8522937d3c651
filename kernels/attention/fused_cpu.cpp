#include "kernels/attention/fused_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/attention/cpu_isa.h"
#include "kernels/attention/tile_entry.h"
#include "kernels/attention/fused_cuda.h"
#include "kernels/common/check.h"

namespace attnlab::kernels {
namespace {

/// CPU tiles run in fp32 (fp64 for fp64 inputs); CUDA reads fp32, bf16 or fp16 as they are
/// (fp64 is computed in fp32) and accumulates in fp32.
at::ScalarType compute_dtype(const at::Tensor& q) {
  if (q.is_cuda()) return q.scalar_type() == at::kDouble ? at::kFloat : q.scalar_type();
  return q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

template <class T>
detail::Tensors<T> tensors_of(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                              const AttentionSpec& s) {
  return {q.const_data_ptr<T>(), k.const_data_ptr<T>(), v.const_data_ptr<T>(),
          bias.numel() ? bias.const_data_ptr<T>() : nullptr, q.size(3), static_cast<T>(s.scale),
          static_cast<T>(s.sigmoid_bias), s.transform == ScoreTransform::sigmoid};
}

/// The tiles of the instruction-set copy in use (cpu_isa.h).
template <class T>
void forward_tiles(const detail::Tensors<T>& in, const detail::TilePlan& plan, T* o, T* lse) {
  switch (attention_cpu_isa()) {
#if defined(ATTNLAB_ATTENTION_X86)
    case CpuIsa::avx512: return detail::avx512::forward_tiles<T>(in, plan, o, lse);
    case CpuIsa::avx2: return detail::avx2::forward_tiles<T>(in, plan, o, lse);
#endif
    default: return detail::baseline::forward_tiles<T>(in, plan, o, lse);
  }
}

template <class T>
void backward_tiles(const detail::Tensors<T>& in, const detail::TilePlan& plan, const T* o, const T* lse,
                    const T* dout, T* dq, T* dk, T* dv, T* dbias) {
  switch (attention_cpu_isa()) {
#if defined(ATTNLAB_ATTENTION_X86)
    case CpuIsa::avx512: return detail::avx512::backward_tiles<T>(in, plan, o, lse, dout, dq, dk, dv, dbias);
    case CpuIsa::avx2: return detail::avx2::backward_tiles<T>(in, plan, o, lse, dout, dq, dk, dv, dbias);
#endif
    default: return detail::baseline::backward_tiles<T>(in, plan, o, lse, dout, dq, dk, dv, dbias);
  }
}

detail::TilePlan plan_of(const at::Tensor& q, const at::Tensor& k, const AttentionSpec& s) {
  return detail::TilePlan(s, q.size(0), q.size(1), k.size(1), q.size(2), k.size(2));
}

/// The spec's tensors travel through saved_data (they are integer and bool masks, never
/// differentiated), its numbers as doubles and ints.
void save_spec(torch::autograd::AutogradContext* ctx, const AttentionSpec& s) {
  auto& m = ctx->saved_data;
  m["scale"] = s.scale, m["sigmoid"] = s.transform == ScoreTransform::sigmoid, m["b"] = s.sigmoid_bias;
  m["q_pos"] = s.q_pos, m["k_pos"] = s.k_pos, m["q_doc"] = s.q_doc, m["k_doc"] = s.k_doc;
  m["keep"] = s.keep, m["active"] = s.active_rows, m["until"] = s.key_until;
  m["window"] = s.window, m["sinks"] = s.sinks, m["keep_block"] = s.keep_block;
  m["br"] = s.query_tile, m["bc"] = s.key_tile;
}

AttentionSpec load_spec(torch::autograd::AutogradContext* ctx) {
  auto& m = ctx->saved_data;
  AttentionSpec s;
  s.scale = m["scale"].toDouble();
  s.transform = m["sigmoid"].toBool() ? ScoreTransform::sigmoid : ScoreTransform::softmax;
  s.sigmoid_bias = m["b"].toDouble();
  auto t = [&](const char* key) { return m[key].isTensor() ? m[key].toTensor() : at::Tensor(); };
  s.q_pos = t("q_pos"), s.k_pos = t("k_pos"), s.q_doc = t("q_doc"), s.k_doc = t("k_doc");
  s.keep = t("keep"), s.active_rows = t("active"), s.key_until = t("until");
  s.window = m["window"].toInt(), s.sinks = m["sinks"].toInt(), s.keep_block = m["keep_block"].toInt();
  s.query_tile = m["br"].toInt(), s.key_tile = m["bc"].toInt();
  return s;
}

/// The CPU tiles on tensors already contiguous in the accumulation dtype (bias: empty or same).
AttentionTiles tiles_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                             const AttentionSpec& spec) {
  const detail::TilePlan plan = plan_of(q, k, spec);
  at::Tensor o = at::zeros_like(q);
  at::Tensor lse = at::full({q.size(0), q.size(1), q.size(2)}, std::numeric_limits<double>::infinity(), q.options());
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "attention_fused", [&] {
    forward_tiles<scalar_t>(tensors_of<scalar_t>(q, k, v, bias, spec), plan, o.mutable_data_ptr<scalar_t>(),
                            lse.mutable_data_ptr<scalar_t>());
  });
  return {o, lse};
}

AttentionTileGrads tiles_backward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const at::Tensor& bias, const at::Tensor& o, const at::Tensor& lse,
                                  const at::Tensor& dout, const AttentionSpec& spec) {
  at::Tensor dq = at::zeros_like(q), dk = at::zeros_like(k), dv = at::zeros_like(v), dbias = at::zeros_like(bias);
  const detail::TilePlan plan = plan_of(q, k, spec);
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "attention_fused_backward", [&] {
    backward_tiles<scalar_t>(tensors_of<scalar_t>(q, k, v, bias, spec), plan, o.const_data_ptr<scalar_t>(),
                             lse.const_data_ptr<scalar_t>(), dout.const_data_ptr<scalar_t>(),
                             dq.mutable_data_ptr<scalar_t>(), dk.mutable_data_ptr<scalar_t>(),
                             dv.mutable_data_ptr<scalar_t>(), bias.numel() ? dbias.mutable_data_ptr<scalar_t>() : nullptr);
  });
  return {dq, dk, dv, bias.numel() ? dbias : at::Tensor()};
}

/// key_bias is an empty tensor when absent (autograd functions take no undefined inputs).
class FusedAttention : public torch::autograd::Function<FusedAttention> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q_in, const at::Tensor& k_in,
                            const at::Tensor& v_in, const at::Tensor& bias_in, const AttentionSpec& spec) {
    const auto dt = compute_dtype(q_in);
    at::Tensor q = q_in.to(dt).contiguous(), k = k_in.to(dt).contiguous(), v = v_in.to(dt).contiguous();
    at::Tensor bias = bias_in.to(q.is_cuda() ? at::kFloat : dt).contiguous();
    at::Tensor o, lse;
    if (q.is_cuda()) {
#ifdef ATTNLAB_WITH_CUDA
      auto r = attention_cuda_forward(q, k, v, bias, spec);
      o = r.out, lse = r.lse;
#endif
    } else {
      auto r = tiles_forward(q, k, v, bias, spec);
      o = r.out, lse = r.lse;
    }
    ctx->save_for_backward({q, k, v, bias, o, lse});
    save_spec(ctx, spec);
    ctx->saved_data["dtype"] = static_cast<int64_t>(q_in.scalar_type());
    ctx->saved_data["bias_dtype"] = static_cast<int64_t>(bias_in.scalar_type());
    return o.to(q_in.scalar_type());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &bias = saved[3], &o = saved[4], &lse = saved[5];
    const AttentionSpec spec = load_spec(ctx);
    const auto in_dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    at::Tensor dout = grads[0].to(q.scalar_type()).contiguous();
    const auto bias_dtype = static_cast<at::ScalarType>(ctx->saved_data["bias_dtype"].toInt());
    if (q.is_cuda()) {
#ifdef ATTNLAB_WITH_CUDA
      const AttentionCudaGrads g = attention_cuda_backward(q, k, v, bias, o, lse, dout, spec);
      return {g.dq.to(in_dtype), g.dk.to(in_dtype), g.dv.to(in_dtype),
              g.dbias.defined() ? g.dbias.to(bias_dtype) : at::Tensor(), at::Tensor()};
#endif
    }
    const AttentionTileGrads g = tiles_backward(q, k, v, bias, o, lse, dout, spec);
    return {g.dq.to(in_dtype), g.dk.to(in_dtype), g.dv.to(in_dtype),
            bias.numel() ? g.dbias.to(bias_dtype) : at::Tensor(), at::Tensor()};
  }
};

}  // namespace

namespace {
/// q [B, H, Tq, d], k, v [B, Hkv, Tk, d], key_bias [B, Hkv, Tk] or undefined.
void check_shapes(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_bias) {
  ATTNLAB_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "fused attention: q, k, v must be 4-D, got ",
                q.sizes(), k.sizes(), v.sizes());
  const int64_t B = q.size(0), H = q.size(1), d = q.size(3), Hkv = k.size(1), Tk = k.size(2);
  ATTNLAB_CHECK_SHAPE(k, B, Hkv, Tk, d);
  ATTNLAB_CHECK_SHAPE(v, B, Hkv, Tk, d);
  ATTNLAB_CHECK(Hkv > 0 && H % Hkv == 0, "fused attention: query heads ", H, " not a multiple of kv heads ", Hkv);
  if (key_bias.defined()) ATTNLAB_CHECK_SHAPE(key_bias, B, Hkv, Tk);
}
}  // namespace

at::Tensor attention_fused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_bias,
                           const AttentionSpec& spec) {
  check_shapes(q, k, v, key_bias);
  ATTNLAB_CHECK(!q.is_cuda() || attention_cuda_compiled(),
                "fused attention: this build has no CUDA kernels (configure with ATTNLAB_CUDA=on)");
  ATTNLAB_CHECK(k.device() == q.device() && v.device() == q.device() &&
                    (!key_bias.defined() || key_bias.device() == q.device()),
                "fused attention: q, k, v and key_bias must be on one device");
  return FusedAttention::apply(q, k, v, key_bias.defined() ? key_bias : at::empty({0}, q.options()), spec);
}

namespace {
/// Checks shapes and brings every input to the CPU accumulation dtype, contiguous.
struct TileInputs {
  at::Tensor q, k, v, bias;
};
TileInputs tile_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_bias) {
  ATTNLAB_CHECK(!q.is_cuda(), "attention tiles without autograd: CPU tensors only");
  check_shapes(q, k, v, key_bias);
  const auto dt = compute_dtype(q);
  return {q.to(dt).contiguous(), k.to(dt).contiguous(), v.to(dt).contiguous(),
          key_bias.defined() ? key_bias.to(dt).contiguous() : at::empty({0}, q.options().dtype(dt))};
}
}  // namespace

AttentionTiles attention_fused_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                       const at::Tensor& key_bias, const AttentionSpec& spec) {
  const TileInputs in = tile_inputs(q, k, v, key_bias);
  return tiles_forward(in.q, in.k, in.v, in.bias, spec);
}

AttentionTileGrads attention_fused_backward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                            const at::Tensor& key_bias, const at::Tensor& out, const at::Tensor& lse,
                                            const at::Tensor& dout, const AttentionSpec& spec) {
  const TileInputs in = tile_inputs(q, k, v, key_bias);
  const auto dt = in.q.scalar_type();
  ATTNLAB_CHECK(out.sizes() == in.q.sizes() && lse.sizes() == in.q.sizes().slice(0, 3) && dout.sizes() == in.q.sizes(),
                "attention tiles backward: out, dout must have q's shape and lse [B, H, Tq], got ", out.sizes(), ", ",
                lse.sizes(), ", ", dout.sizes());
  return tiles_backward(in.q, in.k, in.v, in.bias, out.to(dt).contiguous(), lse.to(dt).contiguous(),
                        dout.to(dt).contiguous(), spec);
}

bool attention_cuda_compiled() {
#ifdef ATTNLAB_WITH_CUDA
  return true;
#else
  return false;
#endif
}

bool attention_cuda_validated() {
#ifdef ATTNLAB_ATTENTION_CUDA_VALIDATED
  return attention_cuda_compiled();
#else
  return false;
#endif
}

at::Tensor causal_attention_fused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) {
  AttentionSpec spec;
  spec.scale = scale;
  return attention_fused(q, k, v, {}, spec);
}

}  // namespace attnlab::kernels
