#include "kernels/attention/tile_plan.h"

#include <ATen/ops/arange.h>

#include <algorithm>

#include "kernels/common/check.h"

namespace attnlab::kernels::detail {
namespace {

/// An int64 [T] or [B, T] tensor as a [B, T] vector (checked); `fallback` + j when undefined.
std::vector<int64_t> per_row(const at::Tensor& t, int64_t B, int64_t T, int64_t fallback, const char* name) {
  std::vector<int64_t> out(B * T);
  if (!t.defined()) {
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < T; ++j) out[b * T + j] = fallback + j;
    return out;
  }
  ATTNLAB_CHECK((t.dim() == 1 && t.size(0) == T) || (t.dim() == 2 && t.size(0) == B && t.size(1) == T),
                "attention: ", name, " has shape ", t.sizes(), ", expected [", T, "] or [", B, ", ", T, "]");
  at::Tensor c = t.to(at::kCPU, at::kLong).contiguous().expand({B, T}).contiguous();
  std::copy_n(c.const_data_ptr<int64_t>(), B * T, out.begin());
  return out;
}

}  // namespace

int64_t default_tile(const AttentionSpec& s) {
  // 256 × 256 tiles stream K and V half as often as 128 × 128 and measured 1.1–1.15× faster
  // for dense causal attention at 4K–16K; a sliding window wastes more of a big tile, and
  // there 128 measured faster (docs/kernels/attention.md, "Speed").
  return s.window > 0 ? 128 : 256;
}

std::vector<int64_t> balanced_order(int64_t n) {
  std::vector<int64_t> order;
  for (int64_t lo = 0, hi = n - 1; lo <= hi; ++lo, --hi) {
    order.push_back(lo);
    if (hi != lo) order.push_back(hi);
  }
  return order;
}

TilePlan::TilePlan(const AttentionSpec& s, int64_t B_, int64_t H_, int64_t Hkv_, int64_t Tq_, int64_t Tk_)
    : B(B_), H(H_), Hkv(Hkv_), Tq(Tq_), Tk(Tk_), Br(s.query_tile ? s.query_tile : default_tile(s)),
      Bc(s.key_tile ? s.key_tile : default_tile(s)), window_(s.window), sinks_(s.sinks) {
  ATTNLAB_CHECK(Br > 0 && Bc > 0 && Br <= 256 && Bc <= 256, "attention: tiles must be in [1, 256], got ", Br, " x ", Bc);
  ATTNLAB_CHECK(s.window >= 0 && s.sinks >= 0, "attention: window (", s.window, ") and sinks (", s.sinks,
                ") must be >= 0");
  q_pos_ = per_row(s.q_pos, B, Tq, Tk - Tq, "q_pos");
  k_pos_ = per_row(s.k_pos, B, Tk, 0, "k_pos");
  ATTNLAB_CHECK(s.q_doc.defined() == s.k_doc.defined(), "attention: give both q_doc and k_doc or neither");
  if ((docs_ = s.q_doc.defined())) {
    ATTNLAB_CHECK_SHAPE(s.q_doc, B, Tq);
    ATTNLAB_CHECK_SHAPE(s.k_doc, B, Tk);
    q_doc_ = per_row(s.q_doc, B, Tq, 0, "q_doc"), k_doc_ = per_row(s.k_doc, B, Tk, 0, "k_doc");
  } else {
    q_doc_.assign(B * Tq, 0), k_doc_.assign(B * Tk, 0);
  }
  if (s.keep.defined()) {
    keep_block_ = s.keep_block;
    ATTNLAB_CHECK(keep_block_ >= 1, "attention: keep_block must be >= 1, got ", keep_block_);
    keep_blocks_ = (Tk + keep_block_ - 1) / keep_block_;
    ATTNLAB_CHECK(s.keep.dim() == 4 && s.keep.size(0) == B && s.keep.size(1) == Hkv &&
                      (s.keep.size(2) == 1 || s.keep.size(2) == Tq) && s.keep.size(3) == keep_blocks_,
                  "attention: keep has shape ", s.keep.sizes(), ", expected [", B, ", ", Hkv, ", 1 or ", Tq, ", ",
                  keep_blocks_, "]");
    keep_rows_ = s.keep.size(2);
    at::Tensor k = s.keep.to(at::kCPU, at::kByte).contiguous();
    keep_.assign(k.const_data_ptr<uint8_t>(), k.const_data_ptr<uint8_t>() + k.numel());
  }
  if (s.key_until.defined()) {
    ATTNLAB_CHECK_SHAPE(s.key_until, B, Hkv, Tk);
    at::Tensor u = s.key_until.to(at::kCPU, at::kLong).contiguous();
    key_until_.assign(u.const_data_ptr<int64_t>(), u.const_data_ptr<int64_t>() + u.numel());
    // Per key tile, the earliest and latest end: a query tile at or past the latest sees none
    // of its keys, one before the earliest is not cut by the bound.
    const int64_t nt = key_tiles();
    until_bounds_.resize(B * Hkv * nt);
    for (int64_t bg = 0; bg < B * Hkv; ++bg)
      for (int64_t t = 0; t < nt; ++t) {
        UntilBounds ub{INT64_MAX, INT64_MIN};
        for (int64_t j = t * Bc; j < std::min(Tk, (t + 1) * Bc); ++j)
          ub.min = std::min(ub.min, key_until_[bg * Tk + j]), ub.max = std::max(ub.max, key_until_[bg * Tk + j]);
        until_bounds_[bg * nt + t] = ub;
      }
  }
  // Query rows: all of them (one list per batch row), or the active ones of each (b, h).
  if ((per_head_ = s.active_rows.defined())) {
    ATTNLAB_CHECK_SHAPE(s.active_rows, B, H, Tq);
    at::Tensor a = s.active_rows.to(at::kCPU, at::kByte).contiguous();
    const uint8_t* p = a.const_data_ptr<uint8_t>();
    rows_.resize(B * H);
    for (int64_t bh = 0; bh < B * H; ++bh)
      for (int64_t i = 0; i < Tq; ++i)
        if (p[bh * Tq + i]) rows_[bh].push_back(i);
  } else {
    rows_.assign(B, std::vector<int64_t>(Tq));
    for (auto& r : rows_)
      for (int64_t i = 0; i < Tq; ++i) r[i] = i;
  }
  tiles_.resize(rows_.size());
  for (size_t r = 0; r < rows_.size(); ++r) {
    const int64_t b = per_head_ ? static_cast<int64_t>(r) / H : static_cast<int64_t>(r);
    const auto& rows = rows_[r];
    for (size_t t0 = 0; t0 < rows.size(); t0 += Br) {
      RowTile rt;
      rt.rows = rows.data() + t0;
      rt.n = std::min<int64_t>(Br, rows.size() - t0);
      rt.contiguous = rt.rows[rt.n - 1] - rt.rows[0] == rt.n - 1;
      rt.pos_min = rt.doc_min = INT64_MAX, rt.pos_max = rt.doc_max = INT64_MIN;
      for (int64_t a = 0; a < rt.n; ++a) {
        const int64_t p = q_pos_[b * Tq + rt.rows[a]], dc = q_doc_[b * Tq + rt.rows[a]];
        rt.pos_min = std::min(rt.pos_min, p), rt.pos_max = std::max(rt.pos_max, p);
        rt.doc_min = std::min(rt.doc_min, dc), rt.doc_max = std::max(rt.doc_max, dc);
      }
      tiles_[r].push_back(rt);
    }
  }
  // Causal tiles late in the sequence see more keys. at::parallel_for hands each thread one
  // contiguous range, so the tiles of a head are dealt from both ends (0, n−1, 1, n−2, …) to
  // give every range the same mix of cheap and expensive tiles.
  for (int64_t bh = 0; bh < B * H; ++bh)
    for (int64_t t : balanced_order(row_tiles(bh))) work_.emplace_back(bh, t);
  key_bounds_.resize(B * key_tiles());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < key_tiles(); ++t) {
      KeyBounds kb{INT64_MAX, INT64_MIN, INT64_MAX, INT64_MIN};
      for (int64_t j = t * Bc; j < std::min(Tk, (t + 1) * Bc); ++j) {
        const int64_t p = k_pos_[b * Tk + j], dc = k_doc_[b * Tk + j];
        kb.pos_min = std::min(kb.pos_min, p), kb.pos_max = std::max(kb.pos_max, p);
        kb.doc_min = std::min(kb.doc_min, dc), kb.doc_max = std::max(kb.doc_max, dc);
      }
      key_bounds_[b * key_tiles() + t] = kb;
    }
}

TileKind TilePlan::classify(int64_t b, int64_t g, const RowTile& rt, int64_t j0, int64_t /*cols*/) const {
  const KeyBounds& k = key_bounds_[b * key_tiles() + j0 / Bc];
  if (k.pos_min > rt.pos_max) return TileKind::skip;                                     // all in the future
  bool until_all = true;
  if (!key_until_.empty()) {
    const UntilBounds& u = until_bounds_[(b * Hkv + g) * key_tiles() + j0 / Bc];
    if (u.max <= rt.pos_min) return TileKind::skip;  // every key hidden again before these rows
    until_all = u.min > rt.pos_max;
  }
  if (window_ > 0 && rt.pos_min - k.pos_max >= window_ && k.pos_min >= sinks_) return TileKind::skip;  // behind
  if (k.doc_max < rt.doc_min || k.doc_min > rt.doc_max) return TileKind::skip;           // other documents
  const bool causal_all = k.pos_max <= rt.pos_min;
  const bool window_all = window_ == 0 || rt.pos_max - k.pos_min < window_ || k.pos_max < sinks_;
  const bool one_doc = k.doc_min == k.doc_max && rt.doc_min == rt.doc_max && k.doc_min == rt.doc_min;
  return causal_all && window_all && one_doc && until_all && keep_.empty() ? TileKind::full : TileKind::partial;
}

MaskInputs TilePlan::mask_inputs(int64_t b, int64_t g, int64_t j0) const {
  MaskInputs m;
  m.k_pos = k_pos_.data() + b * Tk + j0, m.k_doc = k_doc_.data() + b * Tk + j0;
  m.q_pos = q_pos_.data() + b * Tq, m.q_doc = q_doc_.data() + b * Tq;
  m.until = key_until_.empty() ? nullptr : key_until_.data() + (b * Hkv + g) * Tk + j0;
  m.keep = keep_.empty() ? nullptr : keep_.data() + (b * Hkv + g) * keep_rows_ * keep_blocks_;
  m.limit = window_ > 0 ? window_ : INT64_MAX, m.sinks = sinks_;
  m.keep_rows = keep_rows_, m.keep_blocks = keep_blocks_, m.keep_block = keep_block_;
  return m;
}

}  // namespace attnlab::kernels::detail
