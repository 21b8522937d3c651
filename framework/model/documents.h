// Packed documents (docs/data.md, "Packed documents"): a training row may hold the end of one
// document and the start of the next. With data.pack: documents no information crosses a
// document boundary: a mixer that handles MixerContext::documents itself does so (masks, state
// resets); for every other mixer mix_documents cuts each row at its boundaries, runs every
// document as a row of its own (right-padded, which a causal mixer cannot see), and puts the
// outputs back. The result is exactly the one of running each document alone.
#pragma once
#include <ATen/core/Tensor.h>

#include "framework/model/mixer.h"

namespace attnlab {

/// The document index of each token of `tokens` [B, T]: a document starts after every `eot`
/// (the EOT closes its own document, as prepared shards store them).
at::Tensor documents_from_eot(const at::Tensor& tokens, int64_t eot);

/// Where every document of a [B, T] batch goes as a row of its own.
struct DocumentRows {
  int64_t batch = 0, length = 0;  ///< B, T of the packed batch
  int64_t rows = 0, row_length = 0;  ///< N documents, the longest's length L
  at::Tensor gather;   ///< [N * L] index into the B*T tokens; B*T (a zero row) pads
  at::Tensor scatter;  ///< [B * T] index of each token into the N*L row positions
  bool trivial = true;  ///< every row is one document: nothing to do
};

/// `documents` [B, T] (non-decreasing along T) -> the rows layout; the indices live on the
/// documents' device.
DocumentRows document_rows(const at::Tensor& documents);

/// The rows layout of ctx.documents: the model's (ctx.document_rows, computed once per forward)
/// when set, else computed here.
DocumentRows document_rows_of(const MixerContext& ctx);

/// x [B, T, ...] -> [N, L, ...] (zero padded) and back.
at::Tensor to_rows(const at::Tensor& x, const DocumentRows& r);
at::Tensor from_rows(const at::Tensor& y, const DocumentRows& r);

/// The position of each token within its document [B, T] (0 at every document's first token).
at::Tensor positions_in_documents(const at::Tensor& documents);

/// The mixer on packed input: forward as-is when there are no documents or the mixer handles
/// them, otherwise mix_as_document_rows.
at::Tensor mix_documents(Mixer& mixer, const at::Tensor& x, const MixerContext& ctx);

/// Every document as a row of its own through mixer.forward (without documents or positions;
/// ctx.document_rows if set, else computed). A mixer that handles documents under context
/// parallelism may still take this path when the sequence is whole.
at::Tensor mix_as_document_rows(Mixer& mixer, const at::Tensor& x, const MixerContext& ctx);

}  // namespace attnlab
