#include "kernels/attention/cpu_isa.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "kernels/common/check.h"

namespace attnlab::kernels {
namespace {

constexpr int kAuto = -1;
std::atomic<int> g_override{kAuto};

bool cpu_supports(CpuIsa isa) {
#if defined(ATTNLAB_ATTENTION_X86)
  __builtin_cpu_init();
  switch (isa) {
    case CpuIsa::baseline: return true;
    case CpuIsa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CpuIsa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
  }
  return false;
#else
  return isa == CpuIsa::baseline;
#endif
}

/// The widest available copy, or the one ATTNLAB_CPU_ISA names (read once).
CpuIsa automatic() {
  static const CpuIsa chosen = [] {
    if (const char* env = std::getenv("ATTNLAB_CPU_ISA"); env && *env) {
      for (CpuIsa isa : {CpuIsa::baseline, CpuIsa::avx2, CpuIsa::avx512})
        if (std::strcmp(env, cpu_isa_name(isa)) == 0) {
          ATTNLAB_CHECK(cpu_isa_available(isa), "ATTNLAB_CPU_ISA=", env, ": this build or CPU cannot run it");
          return isa;
        }
      ATTNLAB_CHECK(false, "ATTNLAB_CPU_ISA=", env, ": expected baseline, avx2 or avx512");
    }
    for (CpuIsa isa : {CpuIsa::avx512, CpuIsa::avx2})
      if (cpu_isa_available(isa)) return isa;
    return CpuIsa::baseline;
  }();
  return chosen;
}

}  // namespace

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::baseline: return "baseline";
    case CpuIsa::avx2: return "avx2";
    case CpuIsa::avx512: return "avx512";
  }
  return "?";
}

bool cpu_isa_available(CpuIsa isa) { return cpu_supports(isa); }

CpuIsa attention_cpu_isa() {
  const int o = g_override.load(std::memory_order_relaxed);
  return o == kAuto ? automatic() : static_cast<CpuIsa>(o);
}

void set_attention_cpu_isa(std::optional<CpuIsa> isa) {
  ATTNLAB_CHECK(!isa || cpu_isa_available(*isa), "attention: the ", cpu_isa_name(*isa),
                " tiles are not available on this build or CPU");
  g_override.store(isa ? static_cast<int>(*isa) : kAuto, std::memory_order_relaxed);
}

}  // namespace attnlab::kernels
