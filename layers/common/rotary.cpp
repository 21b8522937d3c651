#include "layers/common/rotary.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/cos.h>
#include <ATen/ops/pow.h>
#include <ATen/ops/sin.h>
#include <ATen/ops/where.h>

#include <cmath>

#include "kernels/common/check.h"

namespace attnlab::layers {

at::Tensor rope_inverse_frequencies(const RopeSpec& spec, int64_t d, const at::TensorOptions& options) {
  at::Tensor inv = at::pow(spec.base, at::arange(0, d / 2, options) * (-2.0 / static_cast<double>(d)));
  if (spec.scaling == "none") return inv;
  if (spec.scaling == "linear") return inv / spec.factor;
  ATTNLAB_CHECK(spec.scaling == "llama3", "rope scaling must be none, linear or llama3, got ", spec.scaling);
  // Llama 3.1: wavelengths longer than original/low_freq_factor are stretched by `factor`,
  // shorter than original/high_freq_factor kept, and the band between interpolated linearly in
  // original/wavelength (the same rule as Hugging Face's rope utilities).
  const double original = static_cast<double>(spec.original_max_len);
  const at::Tensor wavelen = 2 * M_PI / inv;
  const at::Tensor smooth = (original / wavelen - spec.low_freq_factor) / (spec.high_freq_factor - spec.low_freq_factor);
  const at::Tensor blended = (1 - smooth) * inv / spec.factor + smooth * inv;
  const at::Tensor scaled = at::where(wavelen > original / spec.low_freq_factor, inv / spec.factor, inv);
  return at::where(wavelen.lt(original / spec.high_freq_factor).logical_or(wavelen > original / spec.low_freq_factor),
                   scaled, blended);
}

at::Tensor apply_rotary(const at::Tensor& x, int64_t offset, double base) {
  return apply_rotary_at(x, at::arange(offset, offset + x.size(1), x.options().dtype(at::kLong)), base);
}

at::Tensor apply_rotary_at(const at::Tensor& x, const at::Tensor& positions, double base) {
  RopeSpec spec;
  spec.base = base;
  return apply_rotary_at(x, positions, spec);
}

at::Tensor apply_rotary_at(const at::Tensor& x, const at::Tensor& positions, const RopeSpec& spec) {
  ATTNLAB_CHECK(x.dim() == 4 && x.size(3) % 2 == 0, "rotary needs [B, T, H, even d], got ",
                x.sizes());
  const bool per_row = positions.dim() == 2;
  ATTNLAB_CHECK((positions.dim() == 1 && positions.size(0) == x.size(1)) ||
                    (per_row && positions.size(0) == x.size(0) && positions.size(1) == x.size(1)),
                "rotary positions must be [T] or [B, T] for x ", x.sizes(), ", got ", positions.sizes());
  const int64_t T = x.size(1), half = x.size(3) / 2, rows = per_row ? x.size(0) : 1;
  const auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto opts = x.options().dtype(acc);
  at::Tensor inv_freq = rope_inverse_frequencies(spec, x.size(3), opts);  // [d/2]
  at::Tensor angles = positions.to(opts).unsqueeze(-1) * inv_freq;         // [(B,) T, d/2]
  at::Tensor cos = at::cos(angles).view({rows, T, 1, half});
  at::Tensor sin = at::sin(angles).view({rows, T, 1, half});
  at::Tensor xf = x.to(acc);
  at::Tensor x1 = xf.narrow(3, 0, half), x2 = xf.narrow(3, half, half);
  return at::cat({x1 * cos - x2 * sin, x2 * cos + x1 * sin}, 3).to(x.scalar_type());
}

}  // namespace attnlab::layers
