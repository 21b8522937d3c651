// Which instruction-set copy of the tiled CPU attention runs (docs/kernels/attention.md,
// "Instruction sets"). The tiles' row loops (exp, max, sums, masks) were most of their time, and
// the compiler vectorises them only as wide as the target it is given, so on x86-64 they are
// built three times and the widest copy this CPU supports is used.
#pragma once
#include <optional>
#include <string>

namespace attnlab::kernels {

enum class CpuIsa { baseline, avx2, avx512 };

const char* cpu_isa_name(CpuIsa isa);
/// Compiled into this build (x86-64 only for avx2/avx512) and supported by this CPU.
bool cpu_isa_available(CpuIsa isa);
/// The copy in use: the widest available one, or the one ATTNLAB_CPU_ISA names
/// (baseline | avx2 | avx512; an unavailable or unknown name is an error), or the override.
CpuIsa attention_cpu_isa();
/// For tests and benchmarks: run the tiles with `isa` from now on (nullopt: back to the
/// automatic choice). Throws when `isa` is not available.
void set_attention_cpu_isa(std::optional<CpuIsa> isa);

}  // namespace attnlab::kernels
