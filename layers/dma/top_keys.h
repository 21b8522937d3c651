// DMA's dynamic mask as one interval per key (docs/mixers/dma.md, "The mask"). Each query keeps
// the w causal keys of its document with the largest δ, ties to the most recent. Keys arrive in
// position order and a key that leaves a query's top-w never returns for a later query (only
// newer, larger keys push it out), so key j is kept by exactly the queries at positions
// [pos_j, until_j), until_j being the position of the key whose arrival pushed it out. A
// streaming top-w (a min-heap of w per document) finds every until_j in O(T log w) time and O(T)
// memory, where ranking every row's keys costs O(T² log T) and a T × T mask.
#pragma once
#include <ATen/core/Tensor.h>

#include "kernels/attention/spec.h"

namespace attnlab::layers {

/// key_until [B, Hkv, Tk] (int64, AttentionSpec::key_until) for the per-key bias [B, Hkv, Tk] and
/// the key positions and documents of `spec` (undefined: 0..Tk−1, one document); INT64_MAX for a
/// key never pushed out. Undefined when no key is ever pushed out (no query has more than w keys).
/// The selection is not differentiated; NaN ranks below every number.
at::Tensor top_keys_until(const at::Tensor& bias, const kernels::AttentionSpec& spec, int64_t w);

}  // namespace attnlab::layers
