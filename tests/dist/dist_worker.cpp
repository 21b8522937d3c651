// One rank of the communicator test (communicator_test.cpp starts several, or torchrun does):
// joins the job from the environment, runs each collective on rank-dependent data, checks the
// result every rank must see, and exits 0 only if all of them held.
#include <ATen/ops/arange.h>
#include <ATen/ops/full.h>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "framework/dist/communicator.h"
#include "tests/dist/worker_checks.h"

using attnlab::worker::expect;
using attnlab::worker::failures;

int main() {
  using namespace attnlab;
  const World w = world_from_env();
  CommOptions o;
  const char* limit = std::getenv("DIST_TIMEOUT_S");  // the test of an unreachable master shortens it
  o.timeout = std::chrono::seconds(limit ? std::atoi(limit) : 30);
  Communicator c(w, o);
  const int64_t r = c.rank(), n = c.size();
  const double rd = static_cast<double>(r), nd = static_cast<double>(n);

  at::Tensor t = at::full({5}, rd + 1, at::kDouble);
  c.all_reduce(t);
  expect(t.eq(nd * (nd + 1) / 2).all().item<bool>(), "all_reduce sum", r);
  t = at::full({5}, rd + 1, at::kDouble);
  c.all_reduce(t, ReduceOp::max);
  expect(t.eq(nd).all().item<bool>(), "all_reduce max", r);

  at::Tensor b = at::full({3}, rd, at::kFloat);
  c.broadcast(b, n - 1);
  expect(b.eq(nd - 1).all().item<bool>(), "broadcast from the last rank", r);

  auto gathered = c.all_gather(at::full({2}, rd, at::kLong));
  expect(static_cast<int64_t>(gathered.size()) == n, "all_gather count", r);
  for (int64_t k = 0; k < n && k < static_cast<int64_t>(gathered.size()); ++k)
    expect(gathered[k].eq(k).all().item<bool>(), "all_gather slot " + std::to_string(k), r);

  // Rank q contributes arange(3n) + q; slice r of the sum is n * (3r .. 3r+2) + n(n-1)/2.
  at::Tensor mine = c.reduce_scatter(at::arange(3 * n, at::kDouble) + rd);
  at::Tensor want = nd * at::arange(3 * r, 3 * r + 3, at::kDouble) + nd * (nd - 1) / 2;
  expect(mine.equal(want), "reduce_scatter slice", r);

  // Two all-reduces in flight at once, waited in reverse order; then the flat gather and the
  // asynchronous reduce-scatter the gradient buckets use.
  at::Tensor x = at::full({7}, rd + 1, at::kDouble), y = at::full({3}, 2 * rd, at::kDouble);
  Pending px = c.all_reduce_async(x), py = c.all_reduce_async(y);
  py.wait(), px.wait(), px.wait();
  expect(x.eq(nd * (nd + 1) / 2).all().item<bool>() && y.eq(nd * (nd - 1)).all().item<bool>(),
         "two all_reduce_async in flight", r);
  at::Tensor part = at::full({2}, rd, at::kFloat), whole = at::zeros({2 * n}, at::kFloat);
  c.all_gather_into(part, whole);
  expect(whole.equal(at::arange(n, at::kFloat).repeat_interleave(2)), "all_gather_into", r);
  at::Tensor in = at::arange(2 * n, at::kDouble) * (rd + 1), out = at::zeros({2}, at::kDouble);
  c.reduce_scatter_async(in, out).wait();
  expect(out.equal(at::arange(2 * r, 2 * r + 2, at::kDouble) * (nd * (nd + 1) / 2)), "reduce_scatter_async", r);

  if (n > 1) {  // a ring: even ranks send first, odd ranks receive first
    at::Tensor out = at::full({4}, rd, at::kDouble), in = at::zeros({4}, at::kDouble);
    const int64_t next = (r + 1) % n, prev = (r + n - 1) % n;
    if (r % 2 == 0) c.send(out, next), c.recv(in, prev);
    else c.recv(in, prev), c.send(out, next);
    expect(in.eq(static_cast<double>(prev)).all().item<bool>(), "send/recv ring", r);
    // The store every rank shares (the config-hash exchange will use it).
    c.store()->set("hello/" + std::to_string(r), std::vector<uint8_t>{static_cast<uint8_t>(r)});
    for (int64_t k = 0; k < n; ++k)
      expect(c.store()->get("hello/" + std::to_string(k)) == std::vector<uint8_t>{static_cast<uint8_t>(k)},
             "store key of rank " + std::to_string(k), r);
  }
  c.barrier();
  expect(c.stats().bytes.at("all_reduce") == (2 * 5 + 7 + 3) * 8, "all_reduce byte counter", r);
  expect(c.stats().calls.at("all_reduce") == 4, "all_reduce call counter", r);
  std::printf("rank %lld of %lld (%s): %s\n", static_cast<long long>(r), static_cast<long long>(n),
              w.launcher.c_str(), failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
