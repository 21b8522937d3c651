// Starting a child process that must not outlive its parent (attnlab launch's workers, a
// sweep's runs): fork, exec, output to one descriptor.
#pragma once
#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

namespace attnlab {

/// Forks and execs `binary` with `args` (argv[0] is `binary`) and `env` added to this process's
/// environment, its stdout and stderr on `out_fd`. The child gets SIGTERM when this process dies,
/// even by kill -9, so it checkpoints and stops instead of running on unowned. Open descriptors
/// the child should not inherit must be O_CLOEXEC. Throws std::runtime_error naming `who` when
/// fork fails; a failed exec exits the child with 127 after saying why on `out_fd`.
pid_t spawn_child(const std::string& binary, const std::vector<std::string>& args,
                  const std::vector<std::pair<std::string, std::string>>& env, int out_fd, const char* who);

}  // namespace attnlab
