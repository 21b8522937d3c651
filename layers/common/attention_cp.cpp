#include "layers/common/attention_cp.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/nonzero.h>

#include <algorithm>

#include "framework/dist/communicator.h"
#include "framework/dist/sequence_collectives.h"
#include "layers/common/attention_mixer.h"

namespace attnlab::layers {
namespace {

/// k, v and the key bias of [B, T, Hkv, ·] as one tensor [B, T, Hkv, 2d (+1)]: one message.
at::Tensor pack(const ShardKeys& s) {
  std::vector<at::Tensor> parts = {s.k, s.v};
  if (s.key_bias.defined()) {
    TORCH_CHECK(s.key_bias.scalar_type() == s.k.scalar_type(), "attention cp: a key bias in ",
                s.key_bias.scalar_type(), " cannot travel with keys in ", s.k.scalar_type());
    parts.push_back(s.key_bias.unsqueeze(-1));
  }
  return at::cat(parts, -1);
}

void unpack(const at::Tensor& packed, int64_t d, bool bias, ShardKeys& into) {
  into.k = packed.narrow(-1, 0, d), into.v = packed.narrow(-1, d, d);
  if (bias) into.key_bias = packed.select(-1, 2 * d);
}

at::Tensor cat_defined(std::vector<at::Tensor> parts, int64_t dim) {
  parts.erase(std::remove_if(parts.begin(), parts.end(), [](const at::Tensor& t) { return !t.defined(); }),
              parts.end());
  return parts.size() == 1 ? parts[0] : at::cat(parts, dim);
}

/// One element of each of two collectives' results, for tie_to_graph (either may be undefined).
at::Tensor either(const at::Tensor& a, const at::Tensor& b) {
  if (!a.defined() || !a.requires_grad()) return b;
  if (!b.defined() || !b.requires_grad()) return a;
  return a.reshape({-1}).narrow(0, 0, 1) + b.reshape({-1}).narrow(0, 0, 1);
}

}  // namespace

ShardKeys gather_all_keys(const ShardKeys& own, Communicator& cp) {
  ShardKeys all;  // separate messages: the key bias keeps its own dtype (DMA's is fp32)
  all.k = gather_sequence(own.k.contiguous(), cp, 1), all.v = gather_sequence(own.v.contiguous(), cp, 1);
  if (own.key_bias.defined()) all.key_bias = gather_sequence(own.key_bias.contiguous(), cp, 1);
  all.pos = gather_sequence(own.pos.contiguous(), cp, own.pos.dim() - 1);  // int64: no gradient
  if (own.docs.defined()) all.docs = gather_sequence(own.docs.contiguous(), cp, 1);
  return all;
}

ShardKeys window_keys(const ShardKeys& own, int64_t window, int64_t sinks, Communicator& cp) {
  const int64_t d = own.k.size(-1), S = own.k.size(1), pos_dim = own.pos.dim() - 1;
  // A window longer than a shard needs earlier shards whole: the all-gather is then the
  // cheapest way, and it holds every sink too. So do a document's sinks, which may sit anywhere.
  if (window - 1 > S || (own.docs.defined() && sinks > 0)) return gather_all_keys(own, cp);
  const bool bias = own.key_bias.defined();
  const at::Tensor packed = pack(own);
  at::Tensor before, before_pos, before_docs, halo_exchanged, sinks_exchanged;
  if (window > 1) {  // the window − 1 positions before the shard: one shift from the previous rank
    const ShardHalo h = tokens_before_shard(packed, cp, window - 1, 1);
    before = h.before, halo_exchanged = h.exchanged;
    before_pos = tokens_before_shard(own.pos, cp, window - 1, pos_dim).before;
    if (own.docs.defined()) before_docs = tokens_before_shard(own.docs, cp, window - 1, 1).before;
  }
  at::Tensor sink_keys, sink_pos;
  if (sinks > 0) {
    // Every shard's first min(sinks, S) tokens; kept: positions < sinks not already covered (the
    // halo and the shard are the contiguous positions from `first` on).
    const int64_t m = std::min(sinks, S);
    const at::Tensor gathered = gather_sequence(packed.narrow(1, 0, m).contiguous(), cp, 1);
    const at::Tensor gathered_pos = gather_sequence(own.pos.narrow(pos_dim, 0, m).contiguous(), cp, pos_dim);
    const at::Tensor row = gathered_pos.dim() == 2 ? gathered_pos[0] : gathered_pos;
    const at::Tensor first_pos = before_pos.defined() ? before_pos : own.pos;
    const int64_t first = (first_pos.dim() == 2 ? first_pos[0][0] : first_pos[0]).item<int64_t>();
    const at::Tensor keep = at::nonzero(row.lt(std::min(sinks, first))).squeeze(-1);
    if (keep.numel() > 0) {
      sink_keys = gathered.index_select(1, keep.to(gathered.device()));
      sink_pos = gathered_pos.index_select(pos_dim, keep.to(gathered_pos.device()));
    }
    sinks_exchanged = gathered;
  }
  ShardKeys out;
  unpack(cat_defined({sink_keys, before, packed}, 1), d, bias, out);
  out.pos = cat_defined({sink_pos, before_pos, own.pos}, pos_dim);
  if (own.docs.defined()) out.docs = cat_defined({before_docs, own.docs}, 1);  // no sinks here
  out.exchanged = either(halo_exchanged, sinks_exchanged);  // tied even where used: it costs nothing
  return out;
}

at::Tensor ring_sum_attention(const AttendCall& call, const ShardKeys& own, Communicator& cp,
                              const std::function<at::Tensor(const AttendCall&)>& attend) {
  const int64_t P = cp.size(), r = cp.rank(), S = own.k.size(1), d = own.k.size(-1);
  const int64_t pos_dim = own.pos.dim() - 1;
  const bool bias = own.key_bias.defined();
  // Positions and documents of every shard, once (int64, small); the keys travel the ring.
  const at::Tensor all_pos = gather_sequence(own.pos.contiguous(), cp, pos_dim);
  const at::Tensor all_docs = own.docs.defined() ? gather_sequence(own.docs.contiguous(), cp, 1) : at::Tensor();
  at::Tensor block = pack(own), out;
  for (int64_t hop = 0; hop < P; ++hop) {
    if (hop > 0) block = shift_ranks(block, cp, 1);  // now the block of shard r − hop (zeros if none)
    const int64_t src = r - hop;
    if (src < 0) continue;  // every rank still forwards the block: the chain is collective
    ShardKeys keys;
    unpack(block, d, bias, keys);
    AttendCall c = call;
    c.k = keys.k.transpose(1, 2), c.v = keys.v.transpose(1, 2);
    c.key_bias = bias ? keys.key_bias.transpose(1, 2) : at::Tensor();
    c.spec.k_pos = all_pos.narrow(pos_dim, src * S, S);
    c.spec.k_doc = all_docs.defined() ? all_docs.narrow(1, src * S, S) : at::Tensor();
    const at::Tensor part = attend(c);
    out = out.defined() ? out + part : part;
  }
  return tie_to_graph(out, block);  // the last hop's block, unused on every rank but the last
}

}  // namespace attnlab::layers
