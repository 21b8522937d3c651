// The fused CPU kernels split their (batch, head) loops with at::parallel_for; built without
// -fopenmp it silently runs everything on one thread (it did until 2026-12-04: every fused CPU
// kernel used one core, plus whatever MKL threaded inside).
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "kernels/common/parallel.h"

namespace attnlab::kernels {
namespace {

TEST(Parallel, ParallelForInKernelsUsesTheIntraOpThreads) {
  const int before = at::get_num_threads();
  at::set_num_threads(2);
  EXPECT_EQ(parallel_for_threads(8), 2);
  EXPECT_EQ(parallel_for_threads(1), 1);
  at::set_num_threads(before);
}

}  // namespace
}  // namespace attnlab::kernels
