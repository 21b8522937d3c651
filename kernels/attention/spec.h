// What one softmax-family attention call computes (docs/kernels/attention.md): which keys each
// query sees and how its scores become weights. The reference and every fused path take the
// same AttentionSpec, so one test compares them for every transform × mask combination.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace attnlab::kernels {

/// softmax: weights softmax_j(z_ij) over the visible keys (online max and sum, stored LSE).
/// sigmoid: weights σ(z_ij + sigmoid_bias), no normalisation and no row statistics.
enum class ScoreTransform { softmax, sigmoid };

/// Query i of q [B, H, Tq, d] sees key j of k [B, Hkv, Tk, d] (head h reads kv head h / (H/Hkv)) iff
///   k_pos[j] ≤ q_pos[i]                                           (causal)
///   and (window == 0 or q_pos[i] − k_pos[j] < window or k_pos[j] < sinks)
///   and q_doc[i] == k_doc[j]                                      (when documents are given)
///   and keep[b, g, i or 0, j / keep_block]                         (when keep is given)
///   and q_pos[i] < key_until[b, g, j]                              (when key_until is given)
///   and active_rows[b, h, i]                                       (when given)
/// The logit is z_ij = scale·q_i·k_j + key_bias[b, g, j] (the bias is not scaled). A query that
/// sees no key gets output 0 (and, for softmax, log-sum-exp +∞).
struct AttentionSpec {
  double scale = 1.0;
  ScoreTransform transform = ScoreTransform::softmax;
  double sigmoid_bias = 0.0;  ///< b of σ(z + b); a constant, not trained
  /// int64 [Tq] or [B, Tq], [Tk] or [B, Tk]. Undefined: q_pos = i + Tk − Tq and k_pos = j
  /// (bottom-right alignment, so a decode query sees the whole cache).
  at::Tensor q_pos, k_pos;
  /// int64 [B, Tq], [B, Tk] document ids (both or neither): keys of another document are hidden.
  at::Tensor q_doc, k_doc;
  int64_t window = 0;  ///< > 0: only the last `window` positions (the query's own included) ...
  int64_t sinks = 0;   ///< ... plus keys at positions < sinks
  /// bool [B, Hkv, 1 or Tq, ceil(Tk / keep_block)]: the key blocks each query (or every query,
  /// extent 1) may see; undefined: all.
  at::Tensor keep;
  int64_t keep_block = 1;
  /// int64 [B, Hkv, Tk]: the position from which key j is hidden again, so each key is seen by
  /// the queries in [k_pos[j], key_until[j]): DMA's per-query top-w keys in O(T) instead of a
  /// T × T mask (docs/mixers/dma.md, "The mask"). Undefined: no bound.
  at::Tensor key_until;
  /// bool [B, H, Tq]: the (row, head) pairs to compute; the others output 0, cost nothing and
  /// pass no gradient. Undefined: all rows.
  at::Tensor active_rows;
  /// Tile sizes of the fused CPU kernel (query rows × key columns); 0 = 256, or 128 with a
  /// window (docs/kernels/attention.md, "Speed").
  int64_t query_tile = 0, key_tile = 0;
};

}  // namespace attnlab::kernels
