// The tiled CPU attention kernel (kernels/attention/fused_cpu.h) against the plain reference,
// output and every gradient (q, k, v, key bias), for each score transform × mask combination of
// AttentionSpec, on sizes that are not tile multiples (T = 1, 17, 64, 65, 300), d = 16 and 64,
// GQA groups 1, 2 and 4; fp64 to 1e-10 and fp32 to 1e-5. Also: queries fewer than keys
// (bottom-right), rows that see nothing, and tile skipping (a spec whose hidden tiles hold NaN
// keys still gives finite results, so skipped tiles are never read). Every instruction-set copy
// of the tiles this CPU runs (kernels/attention/cpu_isa.h) passes the same comparisons.
#include <ATen/Parallel.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <functional>

#include "kernels/attention/cpu_isa.h"
#include "kernels/attention/fused_cpu.h"
#include "kernels/attention/reference.h"
#include "tests/common/test_util.h"

namespace attnlab {
namespace {

using kernels::AttentionSpec;
using kernels::ScoreTransform;

struct Shape {
  int64_t B, H, Hkv, Tq, Tk, d;
};

/// Compares fused with the reference for q, k, v (and a key bias when `bias`) of `shape`.
void check(const std::string& name, const Shape& s, const AttentionSpec& spec, bool bias, at::ScalarType dt,
           double tol) {
  at::manual_seed(s.Tq * 131 + s.Tk * 7 + s.d);
  auto leaf = [&](std::vector<int64_t> shape) { return at::randn(shape, dt).requires_grad_(true); };
  at::Tensor q = leaf({s.B, s.H, s.Tq, s.d}), k = leaf({s.B, s.Hkv, s.Tk, s.d}), v = leaf({s.B, s.Hkv, s.Tk, s.d});
  at::Tensor kb = bias ? leaf({s.B, s.Hkv, s.Tk}) : at::Tensor();
  at::Tensor w = at::randn({s.B, s.H, s.Tq, s.d}, dt);
  at::Tensor want = kernels::attention_reference(q, k, v, kb, spec);
  at::Tensor got = kernels::attention_fused(q, k, v, kb, spec);
  std::vector<at::Tensor> in = {q, k, v};
  if (bias) in.push_back(kb);
  auto gw = torch::autograd::grad({(want * w).sum()}, in, {}, {}, false, /*allow_unused=*/true);
  auto gg = torch::autograd::grad({(got * w).sum()}, in, {}, {}, false, true);
  const std::string tag = fmt::format("{}: B{} H{}/{} Tq{} Tk{} d{} {}", name, s.B, s.H, s.Hkv, s.Tq, s.Tk, s.d,
                                      c10::toString(dt));
  testing::expect_close(tag + " output", want, got, tol);
  const char* names[] = {" dq", " dk", " dv", " dbias"};
  for (size_t i = 0; i < in.size(); ++i) testing::expect_close(tag + names[i], gw[i], gg[i], tol);
}

/// Packed documents: row b splits at random points (ids non-decreasing along T).
at::Tensor random_documents(int64_t B, int64_t T) {
  return (at::rand({B, T}) < 0.05).to(at::kLong).cumsum(1);
}

/// Every mask AttentionSpec offers, each applied to one transform.
std::vector<std::pair<std::string, std::function<AttentionSpec(const Shape&, AttentionSpec)>>> masks() {
  return {
      {"causal", [](const Shape&, AttentionSpec s) { return s; }},
      {"window", [](const Shape&, AttentionSpec s) { s.window = 23; return s; }},
      {"window+sinks", [](const Shape&, AttentionSpec s) { s.window = 9, s.sinks = 4; return s; }},
      {"documents", [](const Shape& x, AttentionSpec s) {
         s.q_doc = s.k_doc = random_documents(x.B, x.Tk);
         return s;
       }},
      {"keep per key", [](const Shape& x, AttentionSpec s) {  // DMA-style: one key mask for all queries
         s.keep = at::rand({x.B, x.Hkv, 1, x.Tk}) < 0.6;
         return s;
       }},
      {"keep blocks per query", [](const Shape& x, AttentionSpec s) {  // SSA-style: blocks of 16 per query
         s.keep_block = 16, s.key_tile = 16, s.query_tile = 32;
         s.keep = at::rand({x.B, x.Hkv, x.Tq, (x.Tk + 15) / 16}) < 0.4;
         return s;
       }},
      {"key until", [](const Shape& x, AttentionSpec s) {  // DMA-style: each key seen by an interval of queries
         s.key_until = at::arange(x.Tk, at::kLong) + at::randint(0, x.Tk + 1, {x.B, x.Hkv, x.Tk}, at::kLong);
         return s;
       }},
      {"active rows", [](const Shape& x, AttentionSpec s) {  // MoH-style: routed (row, head) pairs
         s.active_rows = at::rand({x.B, x.H, x.Tq}) < 0.5;
         return s;
       }},
      {"positions", [](const Shape& x, AttentionSpec s) {  // a shard's queries over gathered keys
         s.q_pos = at::arange(x.Tq, at::kLong) + 3 * x.Tq / 2;
         s.k_pos = at::arange(x.Tk, at::kLong) * 2;
         return s;
       }},
  };
}

void check_all(ScoreTransform transform, const char* tname) {
  const std::vector<Shape> shapes = {{1, 2, 2, 1, 1, 16}, {2, 4, 2, 17, 17, 16}, {1, 4, 1, 64, 64, 16},
                                     {1, 4, 4, 65, 65, 64}, {1, 4, 2, 300, 300, 16}};
  for (const auto& [mname, make] : masks())
    for (const Shape& s : shapes) {
      AttentionSpec spec;
      spec.scale = 1.0 / std::sqrt(static_cast<double>(s.d));
      spec.transform = transform, spec.sigmoid_bias = transform == ScoreTransform::sigmoid ? -2.5 : 0.0;
      spec = make(s, spec);
      check(fmt::format("{} {}", tname, mname), s, spec, /*bias=*/s.Tq % 2 == 1, at::kDouble, 1e-10);
    }
}

TEST(FusedAttention, SoftmaxMatchesTheReferenceForEveryMask) { check_all(ScoreTransform::softmax, "softmax"); }
TEST(FusedAttention, SigmoidMatchesTheReferenceForEveryMask) { check_all(ScoreTransform::sigmoid, "sigmoid"); }

TEST(FusedAttention, MatchesTheReferenceWhenQueriesAndKeysDiffer) {
  AttentionSpec spec;
  spec.scale = 0.3;
  check("decode-like", {1, 2, 1, 5, 80, 12}, spec, true, at::kDouble, 1e-10);   // few queries, long cache
  check("empty rows", {1, 2, 2, 50, 20, 8}, spec, true, at::kDouble, 1e-10);    // first 30 queries see nothing
  spec.transform = ScoreTransform::sigmoid;
  check("sigmoid empty rows", {1, 2, 2, 50, 20, 8}, spec, false, at::kDouble, 1e-10);
  spec.transform = ScoreTransform::softmax, spec.window = 16, spec.sinks = 2;
  check("fp32 window", {2, 4, 2, 97, 97, 32}, spec, true, at::kFloat, 1e-5);
  spec.transform = ScoreTransform::sigmoid;
  check("fp32 sigmoid", {2, 4, 2, 97, 97, 32}, spec, true, at::kFloat, 1e-5);
}

TEST(FusedAttention, EveryInstructionSetCopyMatchesTheReference) {
  // The suite above runs the copy the CPU picks; here each available copy runs every mask in
  // fp32 (the vectorised exp) and fp64, on a size with partial tiles and GQA.
  int ran = 0;
  for (kernels::CpuIsa isa : {kernels::CpuIsa::baseline, kernels::CpuIsa::avx2, kernels::CpuIsa::avx512}) {
    if (!kernels::cpu_isa_available(isa)) continue;
    kernels::set_attention_cpu_isa(isa);
    ++ran;
    const Shape s{2, 4, 2, 150, 150, 32};
    for (ScoreTransform transform : {ScoreTransform::softmax, ScoreTransform::sigmoid})
      for (const auto& [mname, make] : masks()) {
        AttentionSpec spec;
        spec.scale = 1.0 / std::sqrt(static_cast<double>(s.d));
        spec.transform = transform, spec.sigmoid_bias = transform == ScoreTransform::sigmoid ? -2.5 : 0.0;
        spec = make(s, spec);
        const std::string name = fmt::format("{} {} {}", kernels::cpu_isa_name(isa),
                                             transform == ScoreTransform::sigmoid ? "sigmoid" : "softmax", mname);
        check(name, s, spec, /*bias=*/true, at::kFloat, 1e-5);
        check(name, s, spec, /*bias=*/true, at::kDouble, 1e-10);
      }
  }
  kernels::set_attention_cpu_isa(std::nullopt);
  EXPECT_GE(ran, 1);
  // Without an override the widest available copy runs (unless ATTNLAB_CPU_ISA names one).
  if (!std::getenv("ATTNLAB_CPU_ISA")) {
    kernels::CpuIsa widest = kernels::CpuIsa::baseline;
    for (kernels::CpuIsa isa : {kernels::CpuIsa::avx2, kernels::CpuIsa::avx512})
      if (kernels::cpu_isa_available(isa)) widest = isa;
    EXPECT_EQ(kernels::cpu_isa_name(kernels::attention_cpu_isa()), std::string(kernels::cpu_isa_name(widest)));
  }
  EXPECT_EQ(kernels::cpu_isa_available(kernels::CpuIsa::baseline), true);
  EXPECT_THROW(kernels::set_attention_cpu_isa(static_cast<kernels::CpuIsa>(7)), c10::Error);
}

TEST(FusedAttention, BothBackwardSchedulesMatchTheReference) {
  // The backward takes one pass over (batch, kv head) pairs when there are at least twice as
  // many as threads, else two passes (fused_cpu_backward.cpp). B·Hkv = 2 here: one thread
  // takes the one-pass schedule, two threads the two-pass one; both must give every gradient.
  const int threads = at::get_num_threads();
  const Shape s{1, 4, 2, 150, 150, 16};
  for (int n : {1, 2}) {
    at::set_num_threads(n);
    for (const auto& [mname, make] : masks()) {
      AttentionSpec spec;
      spec.scale = 0.25;
      spec = make(s, spec);
      check(fmt::format("{} thread(s) {}", n, mname), s, spec, /*bias=*/true, at::kDouble, 1e-10);
    }
  }
  at::set_num_threads(threads);
}

TEST(FusedAttention, SkippedTilesAreNeverRead) {
  // Keys the spec hides hold NaN: any read of a skipped tile would poison the output.
  const int64_t T = 256, d = 16;
  at::Tensor q = at::randn({1, 2, T, d}, at::kDouble), k = at::randn({1, 2, T, d}, at::kDouble);
  at::Tensor v = at::randn({1, 2, T, d}, at::kDouble);
  AttentionSpec spec;
  spec.scale = 0.25, spec.window = 64;  // query tile [192, 256) sees keys from 129 on
  spec.query_tile = spec.key_tile = 64;
  at::Tensor kn = k.clone(), vn = v.clone();
  kn.narrow(2, 0, 64).fill_(NAN), vn.narrow(2, 0, 64).fill_(NAN);  // never visible to rows >= 128
  at::Tensor got = kernels::attention_fused(q, kn, vn, {}, spec).narrow(2, 128, 128);
  at::Tensor want = kernels::attention_reference(q, k, v, {}, spec).narrow(2, 128, 128);
  testing::expect_close("window skip", want, got, 1e-12);
}

TEST(FusedAttention, SigmoidIsASumOverKeySetsAndSoftmaxInTheLowBiasLimit) {
  at::manual_seed(5);
  const int64_t T = 70, d = 16;
  at::Tensor q = at::randn({2, 4, T, d}, at::kDouble), k = at::randn({2, 2, T, d}, at::kDouble);
  at::Tensor v = at::randn({2, 2, T, d}, at::kDouble);
  AttentionSpec spec;
  spec.scale = 0.25, spec.transform = ScoreTransform::sigmoid, spec.sigmoid_bias = -1.0;
  // Keys split into two disjoint sets: the outputs add (no log-sum-exp merge).
  at::Tensor split = at::rand({2, 2, 1, T}) < 0.5;
  AttentionSpec a = spec, b = spec;
  a.keep = split, b.keep = split.logical_not();
  testing::expect_close("sigmoid A u B", kernels::attention_fused(q, k, v, {}, spec),
                        kernels::attention_fused(q, k, v, {}, a) + kernels::attention_fused(q, k, v, {}, b), 1e-12);
  // b -> -inf: sigmoid weights become e^{z + b}, so row-normalised sigmoid is softmax.
  spec.sigmoid_bias = -40;
  at::Tensor ones = at::ones({2, 2, T, d}, at::kDouble);
  at::Tensor mass = kernels::attention_fused(q, k, ones, {}, spec);  // Σ_j P_ij in every column
  AttentionSpec soft;
  soft.scale = 0.25;
  testing::expect_close("sigmoid b=-40 normalised", kernels::attention_fused(q, k, v, {}, soft),
                        kernels::attention_fused(q, k, v, {}, spec) / mass, 1e-9);
}

TEST(FusedAttention, GqaEqualsRepeatedHeads) {
  at::Tensor q = at::randn({1, 4, 33, 8}, at::kDouble), k = at::randn({1, 2, 33, 8}, at::kDouble);
  at::Tensor v = at::randn({1, 2, 33, 8}, at::kDouble);
  AttentionSpec spec;
  spec.scale = 0.4;
  testing::expect_close("gqa", kernels::attention_fused(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), {}, spec),
                        kernels::attention_fused(q, k, v, {}, spec), 1e-12);
}

}  // namespace
}  // namespace attnlab
