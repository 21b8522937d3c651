#include "framework/model/documents.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/cummax.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros_like.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>

#include <stdexcept>
#include <vector>

namespace attnlab {

at::Tensor documents_from_eot(const at::Tensor& tokens, int64_t eot) {
  if (tokens.dim() != 2) throw std::invalid_argument("documents_from_eot: tokens must be [B, T]");
  at::Tensor ends = tokens.eq(eot).to(at::kLong);  // 1 at each EOT
  // Token t belongs to the document after the EOTs among tokens 0..t-1.
  return at::cumsum(ends, 1) - ends;
}

DocumentRows document_rows(const at::Tensor& documents) {
  if (documents.dim() != 2) throw std::invalid_argument("document_rows: documents must be [B, T]");
  const at::Tensor d = documents.to(at::kCPU, at::kLong).contiguous();
  DocumentRows r;
  r.batch = d.size(0), r.length = d.size(1);
  const int64_t B = r.batch, T = r.length;
  const int64_t* ids = d.const_data_ptr<int64_t>();
  struct Span { int64_t b, start, len; };
  std::vector<Span> spans;
  for (int64_t b = 0; b < B; ++b) {
    int64_t start = 0;
    for (int64_t t = 1; t <= T; ++t) {
      if (t < T && ids[b * T + t] == ids[b * T + t - 1]) continue;
      if (t < T && ids[b * T + t] < ids[b * T + t - 1])
        throw std::invalid_argument("document_rows: document ids must not decrease along a row");
      spans.push_back({b, start, t - start});
      start = t;
    }
  }
  r.rows = static_cast<int64_t>(spans.size());
  r.trivial = r.rows == B;
  if (r.trivial) return r;
  for (const Span& s : spans) r.row_length = std::max(r.row_length, s.len);
  const int64_t L = r.row_length;
  at::Tensor gather = at::full({r.rows * L}, B * T, at::kLong), scatter = at::empty({B * T}, at::kLong);
  int64_t* g = gather.mutable_data_ptr<int64_t>();
  int64_t* sc = scatter.mutable_data_ptr<int64_t>();
  for (int64_t n = 0; n < r.rows; ++n)
    for (int64_t j = 0; j < spans[n].len; ++j) {
      const int64_t token = spans[n].b * T + spans[n].start + j;
      g[n * L + j] = token;
      sc[token] = n * L + j;
    }
  r.gather = gather.to(documents.device());
  r.scatter = scatter.to(documents.device());
  return r;
}

at::Tensor to_rows(const at::Tensor& x, const DocumentRows& r) {
  if (r.trivial) return x;
  std::vector<int64_t> flat = {r.batch * r.length};
  std::vector<int64_t> out = {r.rows, r.row_length};
  for (int64_t k = 2; k < x.dim(); ++k) flat.push_back(x.size(k)), out.push_back(x.size(k));
  at::Tensor tokens = x.reshape(flat);
  std::vector<int64_t> pad = flat;
  pad[0] = 1;
  at::Tensor padded = at::cat({tokens, at::zeros(pad, x.options())});
  return padded.index_select(0, r.gather).view(out);
}

at::Tensor from_rows(const at::Tensor& y, const DocumentRows& r) {
  if (r.trivial) return y;
  std::vector<int64_t> flat = {r.rows * r.row_length};
  std::vector<int64_t> out = {r.batch, r.length};
  for (int64_t k = 2; k < y.dim(); ++k) flat.push_back(y.size(k)), out.push_back(y.size(k));
  return y.reshape(flat).index_select(0, r.scatter).view(out);
}

at::Tensor positions_in_documents(const at::Tensor& documents) {
  if (documents.dim() != 2) throw std::invalid_argument("positions_in_documents: documents must be [B, T]");
  const int64_t T = documents.size(1);
  at::Tensor index = at::arange(T, documents.options().dtype(at::kLong)).expand(documents.sizes());
  // A document's first token is where the id changes (and t = 0); its index is the start.
  at::Tensor starts = at::ones_like(documents, at::kBool);
  if (T > 1) starts.narrow(1, 1, T - 1).copy_(documents.narrow(1, 1, T - 1).ne(documents.narrow(1, 0, T - 1)));
  at::Tensor start_index = std::get<0>(at::cummax(at::where(starts, index, at::zeros_like(index)), 1));
  return index - start_index;
}

at::Tensor mix_documents(Mixer& mixer, const at::Tensor& x, const MixerContext& ctx) {
  if (!ctx.documents.defined() || mixer.handles_documents()) return mixer.forward(x, ctx);
  return mix_as_document_rows(mixer, x, ctx);
}

DocumentRows document_rows_of(const MixerContext& ctx) {
  return ctx.document_rows ? *ctx.document_rows : document_rows(ctx.documents);
}

at::Tensor mix_as_document_rows(Mixer& mixer, const at::Tensor& x, const MixerContext& ctx) {
  const DocumentRows rows = document_rows_of(ctx);
  MixerContext inner = ctx;  // each row is one document, starting at position 0
  inner.documents = at::Tensor();
  inner.positions = at::Tensor();
  inner.document_rows = nullptr;
  return from_rows(mixer.forward(to_rows(x, rows), inner), rows);
}

}  // namespace attnlab
