#include "framework/model/layouts.h"

namespace attnlab {
namespace {

at::Tensor residual(const BlockParts& p, const at::Tensor& x, const at::Tensor& mixed) {
  return p.mixer_residual ? x + mixed : mixed;
}

// h = x + mix(n1(x)); out = h + mlp(n2(h)). The stream is never normalised; a final norm is.
at::Tensor pre_norm(const BlockParts& p, const at::Tensor& x, const MixFn& mix) {
  at::Tensor h = residual(p, x, mix(p.norm1->forward(x)));
  return h + p.mlp->forward(p.norm2->forward(h));
}

// h = n1(x + mix(x)); out = n2(h + mlp(h)). Every block's output is normalised, so no final norm.
at::Tensor post_norm(const BlockParts& p, const at::Tensor& x, const MixFn& mix) {
  at::Tensor h = p.norm1->forward(residual(p, x, mix(x)));
  return p.norm2->forward(h + p.mlp->forward(h));
}

// n = n1(x); out = x + mix(n) + mlp(n): the mixer and the MLP read the same normalised input.
at::Tensor parallel(const BlockParts& p, const at::Tensor& x, const MixFn& mix) {
  at::Tensor n = p.norm1->forward(x);
  return residual(p, x, mix(n)) + p.mlp->forward(n);
}

}  // namespace

Registry<LayoutEntry>& layout_registry() {
  static const bool filled = [] {
    auto& r = Registry<LayoutEntry>::instance();
    r.add("pre_norm", {"h = x + mixer(norm(x)); out = h + mlp(norm(h)); a final norm before the head", 2, true,
                       &pre_norm});
    r.add("post_norm", {"h = norm(x + mixer(x)); out = norm(h + mlp(h)); no final norm", 2, false, &post_norm});
    r.add("parallel", {"out = x + mixer(norm(x)) + mlp(norm(x)), one norm per block; a final norm", 1, true,
                       &parallel});
    return true;
  }();
  (void)filled;
  return Registry<LayoutEntry>::instance();
}

}  // namespace attnlab
