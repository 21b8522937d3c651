// What one causal Grassmann mixing call computes (docs/mixers/grassmann.md). For reduced states
// z [B, N, r] and each offset Δ of the set, token t is paired with s = t − Δ (past pairing) when
// s exists and lies in t's document; the pair's Plücker vector pl(z_t, z_s) is normalised and
// projected, and the projections are averaged over the valid offsets. A token with no valid
// offset gets the projection's bias alone.
#pragma once
#include <cstdint>
#include <vector>

namespace attnlab::kernels {

/// How a pair's Plücker vector p is scaled before the projection.
enum class PluckerNorm {
  smooth,  ///< p / sqrt(‖p‖² + ε²(‖z_t‖²‖z_s‖² + 1)): bounded gradients for degenerate pairs
  clamp,   ///< p / max(‖p‖, ε) (the independent reproduction, with ε = 1e-8)
  none,    ///< p as is
};

struct GrassmannSpec {
  std::vector<int64_t> offsets;  ///< Δ ≥ 1, distinct
  PluckerNorm norm = PluckerNorm::smooth;
  double eps = 1e-4;
  /// The paper's literal pairing s = t + Δ, kept to show that it is not causal; forward only.
  bool future = false;
  /// The first `context` rows of z are earlier tokens (a context-parallel halo, a decoding
  /// history): they are paired with but produce no output.
  int64_t context = 0;
};

}  // namespace attnlab::kernels
