#include "layers/common/linear_mixer.h"

#include <ATen/ops/zeros.h>

#include "layers/common/sharded_linear.h"

namespace attnlab::layers {

kernels::LinearAttentionOptions make_kernel_options(double scale, int64_t chunk, int64_t sub_chunk) {
  kernels::LinearAttentionOptions o;
  o.scale = scale, o.chunk_size = chunk, o.sub_chunk = sub_chunk;
  kernels::check_linear_options(o);
  return o;
}

double linear_attention_flops_per_token(int64_t heads, int64_t dk, int64_t dv, int64_t chunk) {
  const double per_head = 2.0 * (2.0 * dk * dv) + 2.0 * (chunk / 2.0) * (dk + dv);
  return per_head * static_cast<double>(heads);
}

std::vector<CpStrategy> LinearStateMixer::cp_strategies() const { return linear_cp_strategies(); }

at::Tensor LinearStateMixer::forward(const at::Tensor& x, const MixerContext& ctx) {
  return mix(x, {}, ctx).first;
}

std::unique_ptr<MixerState> LinearStateMixer::init_state(int64_t batch, int64_t /*max_len*/) {
  auto s = std::make_unique<LinearState>();
  const at::Tensor w = parameters().front();  // the state follows the model's device and dtype
  s->S = at::zeros({batch, state_heads_, state_dk_, state_dv_},
                   w.options().dtype(kernels::linear_state_dtype(w.scalar_type())));
  return s;
}

at::Tensor LinearStateMixer::step(const at::Tensor& x_t, MixerState& state) {
  auto& st = static_cast<LinearState&>(state);
  auto [y, S] = mix(x_t.unsqueeze(1), st.S, kernel_context("recurrent", false));
  st.S = S, st.position += 1;
  return y.squeeze(1);
}

}  // namespace attnlab::layers
