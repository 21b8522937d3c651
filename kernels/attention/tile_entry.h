// The entry points of the tiled CPU attention (docs/kernels/attention.md, "Instruction sets"):
// fused_cpu_forward.cpp and fused_cpu_backward.cpp are compiled once per instruction set
// (baseline x86-64 or any other target, AVX2 + FMA, AVX-512), each copy in its own namespace
// so no inline row function of one copy can stand in for another's, and fused_cpu.cpp calls the
// widest copy this CPU runs (cpu_isa.h). Internal to kernels/attention/.
#pragma once
#include <cstdint>

#include "kernels/attention/tile_plan.h"

namespace attnlab::kernels::detail {

/// One call's contiguous tensors: q, o [B, H, Tq, d]; k, v [B, Hkv, Tk, d]; key_bias [B, Hkv, Tk]
/// or null; lse [B, H, Tq] (softmax only).
template <class T>
struct Tensors {
  const T *q, *k, *v, *key_bias;
  int64_t d;
  T scale, sigmoid_bias;
  bool sigmoid;
};

// The same two templates in each instruction-set namespace (explicitly instantiated for float
// and double by the copy compiled for it).
#define ATTNLAB_DECLARE_ATTENTION_TILES(isa)                                                                   \
  namespace isa {                                                                                              \
  template <class T>                                                                                           \
  void forward_tiles(const Tensors<T>& in, const TilePlan& plan, T* o, T* lse);                                \
  template <class T>                                                                                           \
  void backward_tiles(const Tensors<T>& in, const TilePlan& plan, const T* o, const T* lse, const T* dout, T* dq, \
                      T* dk, T* dv, T* dbias);                                                                 \
  }
ATTNLAB_DECLARE_ATTENTION_TILES(baseline)
ATTNLAB_DECLARE_ATTENTION_TILES(avx2)
ATTNLAB_DECLARE_ATTENTION_TILES(avx512)
#undef ATTNLAB_DECLARE_ATTENTION_TILES

}  // namespace attnlab::kernels::detail
