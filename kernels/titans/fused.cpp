// The fused Titans memory as one autograd function over all chunks (fused.h). The gate
// coefficients of every chunk come from chunk_coefficients() as torch ops, so autograd carries
// their gradients back to θ, α, η; the function itself takes q, k, v, the coefficients and the
// start state, and hands back y, the end state and the start of the last chunk (the anchor when
// the sequence stops inside a chunk). Inside, one of two engines walks the chunks: the raw CPU
// one (fused_cpu_chunk.h) or the batched one (fused_batched.h), on any device.
#include "kernels/titans/fused.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdio>
#include <mutex>

#include "kernels/common/check.h"
#include "kernels/titans/chunk_coefficients.h"
#include "kernels/titans/dual.h"
#include "kernels/titans/fused_batched.h"
#include "kernels/titans/fused_cpu_chunk.h"
#include "kernels/titans/reference.h"

namespace attnlab::kernels {
namespace {

using titans_cpu::ChunkGateGrads;
using titans_cpu::ChunkGates;
using titans_cpu::ChunkWork;
using titans_fused::ChunkShape;
using titans_fused::kGates;
using titans_fused::kK;
using titans_fused::kQ;
using titans_fused::kStates;
using titans_fused::kV;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

template <class T>
ChunkGates<T> gates_of(const std::vector<at::Tensor>& g, int64_t bh, int64_t c, int64_t nc, int64_t n) {
  const int64_t row = (bh * nc + c) * n, one = bh * nc + c;
  return {g[0].data_ptr<T>() + row * n,  g[1].data_ptr<T>() + row, g[2].data_ptr<T>() + row,
          g[3].data_ptr<T>() + row,      g[4].data_ptr<T>() + row, g[5].data_ptr<T>()[one],
          g[6].data_ptr<T>()[one],       g[7].data_ptr<T>()[one]};
}

template <class T>
ChunkGateGrads<T> gate_grads_of(const std::vector<at::Tensor>& g, int64_t bh, int64_t c, int64_t nc, int64_t n) {
  const int64_t row = (bh * nc + c) * n, one = bh * nc + c;
  return {g[0].data_ptr<T>() + row * n, g[1].data_ptr<T>() + row, g[2].data_ptr<T>() + row,
          g[3].data_ptr<T>() + row,     g[4].data_ptr<T>() + row, g[5].data_ptr<T>() + one,
          g[6].data_ptr<T>() + one,     g[7].data_ptr<T>() + one};
}

template <class T>
void forward_heads(const std::vector<at::Tensor>& in, const ChunkShape& shape, at::Tensor& y,
                   std::vector<at::Tensor>& W_end, std::vector<at::Tensor>& S_end, std::vector<at::Tensor>& W_starts,
                   std::vector<at::Tensor>& S_starts) {
  const size_t L = shape.layers();
  const int64_t B = y.size(0), H = y.size(1), n = shape.n, d = shape.widths[0], nc = y.size(2) / n;
  const std::vector<at::Tensor> gates(in.begin() + kGates, in.begin() + kStates);
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    ChunkWork<T> work(shape);
    for (int64_t bh = begin; bh < end; ++bh) {
      std::vector<T*> W(L), S(L);
      for (size_t l = 0; l < L; ++l) {
        const int64_t size = shape.state_size(l);
        W[l] = W_end[l].data_ptr<T>() + bh * size, S[l] = S_end[l].data_ptr<T>() + bh * size;
        std::copy_n(in[kStates + l].data_ptr<T>() + bh * size, size, W[l]);
        std::copy_n(in[kStates + L + l].data_ptr<T>() + bh * size, size, S[l]);
      }
      const int64_t kept = W_starts[0].size(2);  // every chunk's start, or the last one's only
      for (int64_t c = 0; c < nc; ++c) {
        for (size_t l = 0; l < L && (kept == nc || c + 1 == nc); ++l) {
          const int64_t size = shape.state_size(l), slot = bh * kept + (kept == nc ? c : 0);
          std::copy_n(W[l], size, W_starts[l].data_ptr<T>() + slot * size);
          std::copy_n(S[l], size, S_starts[l].data_ptr<T>() + slot * size);
        }
        const int64_t rows = (bh * nc + c) * n * d;
        work.forward(in[kQ].data_ptr<T>() + rows, in[kK].data_ptr<T>() + rows, in[kV].data_ptr<T>() + rows,
                     gates_of<T>(gates, bh, c, nc, n), W.data(), S.data(), y.data_ptr<T>() + rows);
      }
    }
  });
}

template <class T>
void backward_heads(const std::vector<at::Tensor>& in, const ChunkShape& shape, const std::vector<at::Tensor>& W_starts,
                    const std::vector<at::Tensor>& S_starts, const at::Tensor& dy, const std::vector<at::Tensor>& dW_end,
                    const std::vector<at::Tensor>& dS_end, const std::vector<at::Tensor>& dW_last,
                    std::vector<at::Tensor>& grads) {
  const size_t L = shape.layers();
  const int64_t B = dy.size(0), H = dy.size(1), n = shape.n, d = shape.widths[0], nc = dy.size(2) / n;
  const std::vector<at::Tensor> gates(in.begin() + kGates, in.begin() + kStates);
  const std::vector<at::Tensor> dgates(grads.begin() + kGates, grads.begin() + kStates);
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    ChunkWork<T> work(shape);
    for (int64_t bh = begin; bh < end; ++bh) {
      std::vector<T*> dW(L), dS(L);
      std::vector<const T*> W(L), S(L);
      for (size_t l = 0; l < L; ++l) {
        const int64_t size = shape.state_size(l);
        dW[l] = grads[kStates + l].data_ptr<T>() + bh * size, dS[l] = grads[kStates + L + l].data_ptr<T>() + bh * size;
        std::copy_n(dW_end[l].data_ptr<T>() + bh * size, size, dW[l]);
        std::copy_n(dS_end[l].data_ptr<T>() + bh * size, size, dS[l]);
      }
      for (int64_t c = nc; c-- > 0;) {
        for (size_t l = 0; l < L; ++l) {
          const int64_t size = shape.state_size(l);
          W[l] = W_starts[l].data_ptr<T>() + (bh * nc + c) * size;
          S[l] = S_starts[l].data_ptr<T>() + (bh * nc + c) * size;
        }
        const int64_t rows = (bh * nc + c) * n * d;
        work.backward(in[kQ].data_ptr<T>() + rows, in[kK].data_ptr<T>() + rows, in[kV].data_ptr<T>() + rows,
                      gates_of<T>(gates, bh, c, nc, n), W.data(), S.data(), dy.data_ptr<T>() + rows, dW.data(),
                      dS.data(), grads[kQ].data_ptr<T>() + rows, grads[kK].data_ptr<T>() + rows,
                      grads[kV].data_ptr<T>() + rows, gate_grads_of<T>(dgates, bh, c, nc, n));
        if (c + 1 == nc)  // the end anchor is this chunk's start state
          for (size_t l = 0; l < L; ++l) {
            const int64_t size = shape.state_size(l);
            const T* g = dW_last[l].data_ptr<T>() + bh * size;
            for (int64_t i = 0; i < size; ++i) dW[l][i] += g[i];
          }
      }
    }
  });
}

struct ForwardResult {
  variable_list outputs;  ///< y, W_end (L), S_end (L), W at the last chunk's start (L)
  variable_list saved;    ///< the contiguous inputs, then W and S at every chunk's start (L each)
};

/// Which engine walks the chunks: the raw CPU loops or batched ATen ops (fused_batched.h).
enum class Engine { cpu, batched };

/// The fused forward; keep_starts: the start state of every chunk, for the backward (otherwise
/// only the last chunk's, which the anchor may need).
ForwardResult run_forward(at::TensorList inputs, const ChunkShape& shape, Engine engine, bool keep_starts) {
  std::vector<at::Tensor> in;
  for (const at::Tensor& t : inputs) in.push_back(t.contiguous());
  const size_t L = shape.layers();
  const at::Tensor& q = in[kQ];
  const int64_t B = q.size(0), H = q.size(1), nc = q.size(2) / shape.n;
  at::Tensor y = at::empty_like(q);
  std::vector<at::Tensor> W_end, S_end, W_starts, S_starts;
  for (size_t l = 0; l < L; ++l) {
    W_end.push_back(at::empty_like(in[kStates + l])), S_end.push_back(at::empty_like(in[kStates + l]));
    const auto sizes = std::vector<int64_t>{B, H, keep_starts ? nc : 1, shape.widths[l], shape.widths[l + 1]};
    W_starts.push_back(at::empty(sizes, q.options())), S_starts.push_back(at::empty(sizes, q.options()));
  }
  if (engine == Engine::batched)
    titans_batched::forward(in, shape, y, W_end, S_end, W_starts, S_starts);
  else
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "titans fused memory forward",
                               [&] { forward_heads<scalar_t>(in, shape, y, W_end, S_end, W_starts, S_starts); });
  ForwardResult r{{y}, in};
  for (auto* part : {&W_end, &S_end}) r.outputs.insert(r.outputs.end(), part->begin(), part->end());
  for (const at::Tensor& w : W_starts) r.outputs.push_back(w.select(2, -1).clone());
  for (auto* part : {&W_starts, &S_starts}) r.saved.insert(r.saved.end(), part->begin(), part->end());
  return r;
}

class FusedMemory : public torch::autograd::Function<FusedMemory> {
 public:
  /// Outputs: y, then W_end, S_end and W at the last chunk's start, L each.
  static variable_list forward(AutogradContext* ctx, at::TensorList inputs, const ChunkShape& shape, Engine engine) {
    ForwardResult r = run_forward(inputs, shape, engine, /*keep_starts=*/true);
    ctx->save_for_backward(r.saved);
    ctx->saved_data["n"] = shape.n;
    ctx->saved_data["widths"] = shape.widths;
    ctx->saved_data["loss_scale"] = shape.loss_scale;
    ctx->saved_data["max_grad_norm"] = shape.max_grad_norm;
    ctx->saved_data["silu"] = shape.activation == MemoryActivation::silu;
    ctx->saved_data["batched"] = engine == Engine::batched;
    return r.outputs;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    // Grad mode is on here only when the caller asked for a graph of the gradients (create_graph);
    // this backward is raw loops, so its results would silently carry no second derivative.
    ATTNLAB_CHECK(!at::GradMode::is_enabled(), "titans: the fused memory kernel has no double backward ",
                  "(create_graph); use train.kernel: chunked, the torch dual form, for higher-order gradients");
    ChunkShape shape;
    shape.n = ctx->saved_data["n"].toInt();
    shape.widths = ctx->saved_data["widths"].toIntVector();
    shape.loss_scale = ctx->saved_data["loss_scale"].toDouble();
    shape.max_grad_norm = ctx->saved_data["max_grad_norm"].toDouble();
    shape.activation = ctx->saved_data["silu"].toBool() ? MemoryActivation::silu : MemoryActivation::gelu_tanh;
    const size_t L = shape.layers();
    const variable_list saved = ctx->get_saved_variables();
    const std::vector<at::Tensor> in(saved.begin(), saved.begin() + kStates + 2 * L);
    const std::vector<at::Tensor> W_starts(saved.begin() + kStates + 2 * L, saved.begin() + kStates + 3 * L);
    const std::vector<at::Tensor> S_starts(saved.begin() + kStates + 3 * L, saved.end());
    auto dense = [](const at::Tensor& g, const at::Tensor& like) {
      return g.defined() ? g.contiguous() : at::zeros_like(like);
    };
    const at::Tensor dy = dense(grads[0], in[kQ]);
    std::vector<at::Tensor> dW_end, dS_end, dW_last;
    for (size_t l = 0; l < L; ++l) {
      dW_end.push_back(dense(grads[1 + l], in[kStates + l]));
      dS_end.push_back(dense(grads[1 + L + l], in[kStates + l]));
      dW_last.push_back(dense(grads[1 + 2 * L + l], in[kStates + l]));
    }
    std::vector<at::Tensor> out;
    for (const at::Tensor& t : in) out.push_back(at::empty_like(t));
    if (ctx->saved_data["batched"].toBool())
      titans_batched::backward(in, shape, W_starts, S_starts, dy, dW_end, dS_end, dW_last, out);
    else
      AT_DISPATCH_FLOATING_TYPES(in[kQ].scalar_type(), "titans fused memory backward", [&] {
        backward_heads<scalar_t>(in, shape, W_starts, S_starts, dy, dW_end, dS_end, dW_last, out);
      });
    out.emplace_back(), out.emplace_back();  // the shape and the engine
    return out;
  }
};

// The raw loops index every buffer from q's sizes, so every other shape is checked first
// (memory_dual would fail in a matmul or broadcast; here it would read out of bounds; the batched
// engine's views would fail less clearly).
void check_fused_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& theta,
                        const at::Tensor& alpha, const at::Tensor& eta, const MemoryState& state) {
  ATTNLAB_CHECK(q.dim() == 4, "titans: q must be [B, H, N, d], got ", q.sizes());
  const int64_t B = q.size(0), H = q.size(1), N = q.size(2), d = q.size(3);
  ATTNLAB_CHECK_SHAPE(k, B, H, N, d);
  ATTNLAB_CHECK_SHAPE(v, B, H, N, d);
  ATTNLAB_CHECK_SHAPE(theta, B, H, N);
  ATTNLAB_CHECK_SHAPE(alpha, B, H, N);
  ATTNLAB_CHECK_SHAPE(eta, B, H, N);
  const size_t L = state.weights.size();
  ATTNLAB_CHECK(L >= 1 && state.momentum.size() == L, "titans: the memory state needs W and S for each of its ",
                L, " layers, got ", state.momentum.size(), " S");
  const auto acc = state.weights[0].scalar_type();
  ATTNLAB_CHECK(acc == at::kFloat || acc == at::kDouble, "titans: the fused memory kernel keeps its state in fp32 ",
                "or fp64, got ", acc);
  int64_t width = d;
  for (size_t l = 0; l < L; ++l) {
    const at::Tensor& w = state.weights[l];
    ATTNLAB_CHECK(w.dim() == 4 && w.size(0) == B && w.size(1) == H && w.size(2) == width,
                  "titans: memory layer ", l, " weights must be [", B, ", ", H, ", ", width, ", w], got ", w.sizes());
    ATTNLAB_CHECK(state.momentum[l].sizes() == w.sizes() && state.momentum[l].scalar_type() == acc &&
                      w.scalar_type() == acc,
                  "titans: memory layer ", l, " momentum ", state.momentum[l].sizes(), " must match its weights ",
                  w.sizes(), " in shape and dtype");
    width = w.size(3);
  }
  ATTNLAB_CHECK(width == d, "titans: the memory's last layer has width ", width, ", q and v have ", d);
  for (const at::Tensor* t : {&k, &v, &theta, &alpha, &eta, &state.weights[0]})
    ATTNLAB_CHECK(t->device() == q.device(), "titans: the fused memory kernel needs every input on one device, got ",
                  q.device(), " and ", t->device());
}

/// memory_fused and memory_fused_batched: everything but the engine is shared.
std::pair<at::Tensor, MemoryState> fused_memory(Engine engine, const at::Tensor& q, const at::Tensor& k,
                                                const at::Tensor& v, const at::Tensor& theta, const at::Tensor& alpha,
                                                const at::Tensor& eta, const MemoryState& state,
                                                const MemorySpec& spec) {
  ATTNLAB_CHECK(spec.chunk >= 1, "titans: chunk must be >= 1, got ", spec.chunk);
  ATTNLAB_CHECK(state.tau >= 0 && state.tau < spec.chunk, "titans: state position ", state.tau,
                " outside a chunk of ", spec.chunk);
  const int64_t N = q.size(2);
  if (N == 0) return {q.clone(), state};
  // A state inside a chunk finishes that chunk first (its key pass reads an anchor ≠ W).
  if (state.tau > 0) {
    const int64_t head = std::min(spec.chunk - state.tau, N);
    auto piece = [&](const at::Tensor& t, int64_t from, int64_t len) { return t.narrow(2, from, len); };
    auto [y0, s] = memory_dual(piece(q, 0, head), piece(k, 0, head), piece(v, 0, head), piece(theta, 0, head),
                               piece(alpha, 0, head), piece(eta, 0, head), state, spec);
    if (head == N) return {y0, s};
    auto rest = fused_memory(engine, piece(q, head, N - head), piece(k, head, N - head), piece(v, head, N - head),
                             piece(theta, head, N - head), piece(alpha, head, N - head), piece(eta, head, N - head),
                             s, spec);
    return {at::cat({y0, rest.first}, 2), rest.second};
  }
  check_fused_inputs(q, k, v, theta, alpha, eta, state);
  // At τ = 0 the chunk starts here, so its anchor is W itself (spec.h); state.anchor is not read,
  // as in the token loop.
  const size_t L = state.weights.size();
  const auto acc = state.weights.at(0).scalar_type();
  const int64_t B = q.size(0), H = q.size(1), n = std::min(spec.chunk, N), nc = (N + n - 1) / n, pad = nc * n - N;
  // Padding tokens learn nothing (θ = 0) and decay nothing (α = 0, η = 1), so their outputs
  // and gradients are inert; the hand-off of a partial last chunk is still read at its last real
  // token (below), since W would go on taking the momentum over padding (W_t = W_{t−1} + S_t).
  auto padded = [&](const at::Tensor& t, double value) {
    at::Tensor x = t.to(acc);
    if (pad == 0) return x;
    std::vector<int64_t> widths = t.dim() == 4 ? std::vector<int64_t>{0, 0, 0, pad} : std::vector<int64_t>{0, pad};
    return at::constant_pad_nd(x, widths, value);
  };
  auto per_chunk = [&](const at::Tensor& t, double value) { return padded(t, value).view({B, H, nc, n}); };
  ChunkCoefficients co =
      chunk_coefficients(per_chunk(theta, 0), per_chunk(alpha, 0), per_chunk(eta, 1), spec.read_after_write);
  if (pad > 0) {
    const int64_t tail = n - pad;
    auto last_piece = [&](const at::Tensor& t) { return t.narrow(2, N - tail, tail).to(acc); };
    const ChunkCoefficients last =
        chunk_coefficients(last_piece(theta), last_piece(alpha), last_piece(eta), spec.read_after_write);
    auto splice = [&](const at::Tensor& all, const at::Tensor& end) {  // the last chunk's entries from `end`
      const at::Tensor e = end.dim() == 3 ? at::constant_pad_nd(end, {0, pad}, 0) : end;
      return at::cat({all.narrow(2, 0, nc - 1), e.unsqueeze(2)}, 2);
    };
    co.end_weight = splice(co.end_weight, last.end_weight), co.end_surprise = splice(co.end_surprise, last.end_surprise);
    co.end_decay = splice(co.end_decay, last.end_decay), co.end_mix = splice(co.end_mix, last.end_mix);
    co.end_momentum = splice(co.end_momentum, last.end_momentum);
  }
  std::vector<at::Tensor> inputs{padded(q, 0), padded(k, 0), padded(v, 0), co.query, co.query_weight,
                                 co.query_surprise, co.end_weight, co.end_surprise, co.end_decay, co.end_mix,
                                 co.end_momentum};
  ChunkShape shape;
  shape.n = n, shape.loss_scale = spec.loss_scale, shape.max_grad_norm = spec.max_grad_norm;
  shape.activation = spec.activation;
  shape.widths.push_back(q.size(3));
  for (size_t l = 0; l < L; ++l) {
    inputs.push_back(state.weights[l].to(acc));
    shape.widths.push_back(state.weights[l].size(3));
  }
  for (size_t l = 0; l < L; ++l) inputs.push_back(state.momentum[l].to(acc));
  bool grad = false;
  for (const at::Tensor& t : inputs) grad = grad || t.requires_grad();
  // Nothing to differentiate: no chunk start states to keep.
  const variable_list out = grad && at::GradMode::is_enabled() ? FusedMemory::apply(at::TensorList(inputs), shape, engine)
                                                               : run_forward(inputs, shape, engine, false).outputs;
  MemoryState s;
  s.weights.assign(out.begin() + 1, out.begin() + 1 + L);
  s.momentum.assign(out.begin() + 1 + L, out.begin() + 1 + 2 * L);
  s.tau = N % spec.chunk;
  if (s.tau == 0)
    s.anchor = s.weights;
  else
    s.anchor.assign(out.begin() + 1 + 2 * L, out.end());
  return {out[0].narrow(2, 0, N).to(q.scalar_type()), s};
}

}  // namespace

std::pair<at::Tensor, MemoryState> memory_fused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                const at::Tensor& theta, const at::Tensor& alpha,
                                                const at::Tensor& eta, const MemoryState& state,
                                                const MemorySpec& spec) {
  return fused_memory(q.is_cpu() ? Engine::cpu : Engine::batched, q, k, v, theta, alpha, eta, state, spec);
}

std::pair<at::Tensor, MemoryState> memory_fused_batched(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                        const at::Tensor& theta, const at::Tensor& alpha,
                                                        const at::Tensor& eta, const MemoryState& state,
                                                        const MemorySpec& spec) {
  return fused_memory(Engine::batched, q, k, v, theta, alpha, eta, state, spec);
}

bool memory_cuda_validated() {
#ifdef ATTNLAB_TITANS_CUDA_VALIDATED
  return true;
#else
  return false;
#endif
}

MemoryKernel memory_kernel(const std::string& kernel, bool cuda) {
  if (kernel == "reference" || kernel == "recurrent") return memory_reference;
  if (kernel == "chunked") return memory_dual;
  ATTNLAB_CHECK(kernel == "auto" || kernel == "fused", "titans: unknown kernel '", kernel,
                "', expected auto | reference | recurrent | chunked | fused");
  if (!cuda || memory_cuda_validated()) return memory_fused;
  // The batched engine is tested on CPU only; auto waits for tools/gpu/check.sh (kernels/CMakeLists.txt).
  if (kernel == "auto") return memory_dual;
  static std::once_flag said;
  std::call_once(said, [] {
    std::fprintf(stderr, "note: titans: kernel: fused on CUDA runs the batched memory kernel, which has not been "
                         "checked on a GPU yet (tools/gpu/check.sh); auto runs chunked there\n");
  });
  return memory_fused;
}

}  // namespace attnlab::kernels
