#include "framework/model/token_positions.h"

#include <ATen/ops/arange.h>

#include "framework/dist/communicator.h"
#include "framework/model/documents.h"

namespace attnlab {

at::Tensor call_positions(const MixerContext& ctx, int64_t B, int64_t T, c10::Device device, const char* who) {
  if (ctx.positions.defined()) {
    TORCH_CHECK(ctx.positions.dim() == 2 && ctx.positions.size(0) == B && ctx.positions.size(1) == T, who,
                ": positions must be [B, T] = [", B, ", ", T, "], got ", ctx.positions.sizes());
    return ctx.positions.to(device, at::kLong);
  }
  // Packed documents without positions (a whole sequence): positions restart per document.
  if (ctx.documents.defined() && !(ctx.cp && ctx.cp->size() > 1))
    return positions_in_documents(ctx.documents.to(device, at::kLong));
  const int64_t start = ctx.cp ? ctx.cp->rank() * T : 0;  // contiguous equal shards
  return at::arange(start, start + T, at::TensorOptions().dtype(at::kLong).device(device));
}

}  // namespace attnlab
