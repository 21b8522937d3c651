// Injected failure points for crash tests. `fault_point("save:renamed")` ends the process at
// once with exit code kFaultExitCode (no destructors, no flush: like kill -9) when the
// environment variable ATTNLAB_FAULT_AT names that point, and does nothing otherwise. The
// points of the checkpoint save sequence are listed in docs/checkpoints.md.
#pragma once

namespace attnlab {

constexpr int kFaultExitCode = 86;
void fault_point(const char* name);

}  // namespace attnlab
