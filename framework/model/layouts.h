// Block layouts (docs/model.md, "Blocks as data"): where the norms and the residual additions sit
// around a block's mixer and MLP. A layout is a function of the block's parts, so adding one is
// one registry entry.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>

#include "framework/model/parts.h"
#include "framework/registry/registry.h"

namespace attnlab {

/// What a layout combines. norm2 is null for layouts with one norm per block.
struct BlockParts {
  Norm* norm1 = nullptr;
  Norm* norm2 = nullptr;
  Mlp* mlp = nullptr;
  bool mixer_residual = true;  ///< add the mixer's input to its output
};

/// The block's mixer applied to [B, T, D] (forward) or [B, D] (one decoding step).
using MixFn = std::function<at::Tensor(const at::Tensor&)>;

struct LayoutEntry {
  std::string description;
  int norms_per_block = 2;
  bool final_norm = true;  ///< a norm between the last block and the head
  at::Tensor (*apply)(const BlockParts& parts, const at::Tensor& x, const MixFn& mix);
};

/// Built in: pre_norm (Llama, GPT-2), post_norm (Vaswani et al.), parallel
/// (GPT-J / PaLM).
Registry<LayoutEntry>& layout_registry();

}  // namespace attnlab
