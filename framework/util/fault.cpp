#include "framework/util/fault.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace attnlab {

void fault_point(const char* name) {
  const char* want = std::getenv("ATTNLAB_FAULT_AT");
  if (want && std::strcmp(want, name) == 0) ::_exit(kFaultExitCode);
}

}  // namespace attnlab
