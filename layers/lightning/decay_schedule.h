// Lightning / TransNormerLLM constant per-head decays λ_h (docs/mixers/lightning.md). The
// sources disagree, so both are selectable:
//   official (HF TNL code): s_h = ALiBi slope 2^{-8(h+1)/H} (ALiBi interpolation for other H),
//                           log λ_h = −s_h · (1 − l/(L−1) + 1e-5)
//   paper (= fla):          log λ_h = −(8h/H) · (1 − l/L),  h = 0..H−1 (head 0 never decays)
// with l the 0-based layer index and L the number of layers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace attnlab::layers {

/// ALiBi slopes for `heads` heads (powers of two exactly; others by ALiBi's interleaving).
std::vector<double> alibi_slopes(int64_t heads);

/// log λ_h for every head of layer `layer` (0-based) of `layers`; schedule: official | paper.
std::vector<double> lightning_log_decay(const std::string& schedule, int64_t heads, int64_t layer,
                                        int64_t layers);

}  // namespace attnlab::layers
