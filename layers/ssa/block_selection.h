// NSA-style block selection as SSA uses it (docs/mixers/ssa.md): per query token and kv head,
// score the mean-pooled key blocks by the query heads' softmax over complete blocks, summed over
// the GQA group; always take the query's own block; never a future one; keep the top S.
#pragma once
#include <ATen/core/Tensor.h>

namespace attnlab::layers {

/// q [B, H, Tq, d], k [B, Hkv, Tk, d]; query i sits at key index q_index[i] ([Tq] or [B, Tq],
/// int64). Returns keep [B, Hkv, Tq, ceil(Tk / block)] (bool): the selected blocks, at most
/// `count` per row, the same for the G query heads of a kv head. Exact top-S, ties to the lowest
/// block index; no gradient.
at::Tensor select_blocks(const at::Tensor& q, const at::Tensor& k, const at::Tensor& q_index, double scale,
                         int64_t block, int64_t count);

}  // namespace attnlab::layers
