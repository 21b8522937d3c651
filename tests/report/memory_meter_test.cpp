// The benchmarks' per-implementation memory meter (tools/common/memory_meter.h): it counts the
// bytes CPU tensors hold, and a window reports the high-water mark above what was live when it
// opened, which is what `attnlab bench mixer` records as peak_mb.
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include "tools/common/memory_meter.h"

namespace attnlab::tools {
namespace {

constexpr int64_t kMiB = 1024 * 1024;

TEST(MemoryMeter, CountsLiveTensorBytesAndTheirPeakInsideAWindow) {
  install_cpu_memory_meter();
  install_cpu_memory_meter();  // idempotent: a second install must not wrap the wrapper
  const at::Tensor before = at::zeros({kMiB}, at::kFloat);  // 4 MiB, live before the window
  const int64_t base = cpu_live_bytes();
  EXPECT_GE(base, 4 * kMiB);
  const MemoryWindow window;
  {
    const at::Tensor a = at::empty({10 * kMiB / 4}, at::kFloat);  // 10 MiB
    EXPECT_GE(cpu_live_bytes() - base, 10 * kMiB);
    {
      const at::Tensor b = at::empty({6 * kMiB / 8}, at::kDouble);  // 6 MiB more, then freed
      EXPECT_GE(cpu_live_bytes() - base, 16 * kMiB);
    }
  }
  // Both freed: live is back to the base, the window remembers the 16 MiB high-water mark and
  // does not count the tensor that was live before it opened.
  EXPECT_EQ(cpu_live_bytes(), base);
  EXPECT_GE(window.extra_mb(), 16.0);
  EXPECT_LT(window.extra_mb(), 17.0);
  // A new window starts from the current live bytes, not the old peak.
  const MemoryWindow next;
  EXPECT_LT(next.extra_mb(), 0.5);
}

}  // namespace
}  // namespace attnlab::tools
