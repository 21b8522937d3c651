// Per-implementation memory for the benchmarks (`attnlab bench mixer`): a counting wrapper around
// the CPU allocator that knows how many bytes live CPU tensors hold and the high-water mark since
// the last reset. The process's peak RSS cannot tell one implementation from the next (it only
// grows, and the allocator keeps freed pages); this can. It sees every ATen CPU allocation but not
// memory a library allocates on its own (oneDNN scratch, OpenMP stacks).
#pragma once
#include <cstdint>

namespace attnlab::tools {

/// Wraps the current CPU allocator once per process; later calls do nothing. Tensors allocated
/// before the call are not counted (their frees are not either).
void install_cpu_memory_meter();
/// Bytes held by CPU tensors allocated since the install and not yet freed.
int64_t cpu_live_bytes();
/// The largest cpu_live_bytes() since the last reset (or the install).
int64_t cpu_peak_bytes();
/// Starts a new high-water mark at the current live bytes.
void reset_cpu_peak();

/// The extra memory one implementation needs above what was live when the window opened (its
/// inputs, earlier gradients): construct it just before timing, read extra_mb() after.
class MemoryWindow {
 public:
  MemoryWindow() : base_(cpu_live_bytes()) { reset_cpu_peak(); }
  double extra_mb() const { return static_cast<double>(cpu_peak_bytes() - base_) / (1024.0 * 1024.0); }

 private:
  int64_t base_;
};

}  // namespace attnlab::tools
