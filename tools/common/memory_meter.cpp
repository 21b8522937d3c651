#include "tools/common/memory_meter.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <mutex>

namespace attnlab::tools {
namespace {

std::atomic<int64_t> g_live{0}, g_peak{0};

/// What the wrapper's DataPtr owns: the inner allocation and its size, returned on free.
struct Counted {
  c10::DataPtr inner;
  int64_t bytes;
};

void release(void* ctx) {
  auto* c = static_cast<Counted*>(ctx);
  g_live.fetch_sub(c->bytes, std::memory_order_relaxed);
  delete c;  // frees the inner allocation through its own deleter
}

void raise_peak(int64_t now) {
  int64_t p = g_peak.load(std::memory_order_relaxed);
  while (now > p && !g_peak.compare_exchange_weak(p, now, std::memory_order_relaxed)) {
  }
}

class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* inner) : inner_(inner) {}

  c10::DataPtr allocate(size_t n) override {
    c10::DataPtr d = inner_->allocate(n);
    void* data = d.get();
    const c10::Device device = d.device();
    const auto bytes = static_cast<int64_t>(n);
    auto* ctx = new Counted{std::move(d), bytes};
    raise_peak(g_live.fetch_add(bytes, std::memory_order_relaxed) + bytes);
    return {data, ctx, &release, device};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

 private:
  c10::Allocator* inner_;
};

}  // namespace

void install_cpu_memory_meter() {
  static std::once_flag once;
  std::call_once(once, [] {
    static CountingAllocator counting(c10::GetCPUAllocator());
    // The highest priority, so a later registration of a default allocator cannot displace it.
    c10::SetCPUAllocator(&counting, /*priority=*/UINT8_MAX);
  });
}

int64_t cpu_live_bytes() { return g_live.load(std::memory_order_relaxed); }
int64_t cpu_peak_bytes() { return g_peak.load(std::memory_order_relaxed); }
void reset_cpu_peak() { g_peak.store(g_live.load(std::memory_order_relaxed), std::memory_order_relaxed); }

}  // namespace attnlab::tools
