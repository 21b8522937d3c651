// The host-side layout of one fused attention call (docs/kernels/attention.md, "Tiles and
// skipping"): the query rows of each (batch, head) cut into tiles, per-tile bounds on positions
// and documents, and the test that says whether a (query tile, key tile) pair is skipped, fully
// visible, or needs an element mask. Internal to kernels/attention/.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/attention/spec.h"

namespace attnlab::kernels::detail {

enum class TileKind { skip, full, partial };

/// One visibility flag per element of a partial tile, as wide as an fp32 lane: the masked row
/// loops then vectorise on every instruction set (a byte mask needed AVX-512 VBMI byte shuffles
/// to reach 16 float lanes and ran scalar without them).
using Visible = int32_t;

/// What the element mask of one (batch, kv head, key tile) needs: raw rows of the plan's tables
/// (fused_cpu_tiles.h fills the mask from them, compiled per instruction set).
struct MaskInputs {
  const int64_t *k_pos, *k_doc, *q_pos, *q_doc;  ///< from key j0 on; of batch b
  const int64_t* until = nullptr;                ///< from key j0 on; null: no bound
  const uint8_t* keep = nullptr;                 ///< [keep_rows, keep_blocks] of (b, g); null: all
  int64_t limit, sinks, keep_rows = 0, keep_blocks = 0, keep_block = 1;
};

/// 0, n − 1, 1, n − 2, …: an order of n tiles whose cost grows (or shrinks) along the sequence
/// such that any contiguous half of it costs about the same.
std::vector<int64_t> balanced_order(int64_t n);

/// The tile edge when the spec leaves it at 0: 256, or 128 with a sliding window.
int64_t default_tile(const AttentionSpec& s);

/// A tile of query rows of one (batch, head): rows[0..n), ascending.
struct RowTile {
  const int64_t* rows = nullptr;
  int64_t n = 0;
  bool contiguous = false;  ///< rows are rows[0], rows[0] + 1, ...
  int64_t pos_min = 0, pos_max = 0, doc_min = 0, doc_max = 0;
};

class TilePlan {
 public:
  /// Resolves `spec` for q [B, H, Tq, ·] and k [B, Hkv, Tk, ·] (checks every tensor's shape).
  TilePlan(const AttentionSpec& spec, int64_t B, int64_t H, int64_t Hkv, int64_t Tq, int64_t Tk);

  int64_t B, H, Hkv, Tq, Tk, Br, Bc;
  int64_t group() const { return H / Hkv; }
  int64_t key_tiles() const { return (Tk + Bc - 1) / Bc; }
  /// Every (b·H + h, row tile) with at least one row, for at::parallel_for.
  const std::vector<std::pair<int64_t, int64_t>>& work() const { return work_; }
  int64_t row_tiles(int64_t bh) const { return static_cast<int64_t>(tiles_[slot(bh)].size()); }
  const RowTile& row_tile(int64_t bh, int64_t t) const { return tiles_[slot(bh)][t]; }
  /// Whether keys [j0, j0 + cols) of batch b, kv head g can be seen by the rows of `rt`, all of
  /// them, or some.
  TileKind classify(int64_t b, int64_t g, const RowTile& rt, int64_t j0, int64_t cols) const;
  /// The inputs of the element mask of keys j0.. of batch b, kv head g.
  MaskInputs mask_inputs(int64_t b, int64_t g, int64_t j0) const;

 private:
  int64_t slot(int64_t bh) const { return per_head_ ? bh : bh / H; }

  int64_t window_, sinks_, keep_block_ = 1;
  bool per_head_ = false, docs_ = false;
  std::vector<int64_t> q_pos_, k_pos_, q_doc_, k_doc_;  // [B, T] each
  std::vector<uint8_t> keep_;                           // [B, Hkv, 1 or Tq, blocks]
  int64_t keep_rows_ = 0, keep_blocks_ = 0;
  std::vector<int64_t> key_until_;  // [B, Hkv, Tk]; empty: no bound
  struct UntilBounds { int64_t min, max; };
  std::vector<UntilBounds> until_bounds_;  // [B, Hkv, key tiles]
  std::vector<std::vector<int64_t>> rows_;  // per batch row (all rows) or per (b, h) (active rows)
  std::vector<std::vector<RowTile>> tiles_;
  struct KeyBounds { int64_t pos_min, pos_max, doc_min, doc_max; };
  std::vector<KeyBounds> key_bounds_;  // [B, key tiles]
  std::vector<std::pair<int64_t, int64_t>> work_;
};

}  // namespace attnlab::kernels::detail
