#include "framework/util/child_process.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace attnlab {

pid_t spawn_child(const std::string& binary, const std::vector<std::string>& args,
                  const std::vector<std::pair<std::string, std::string>>& env, int out_fd, const char* who) {
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string(who) + ": fork failed: " + std::strerror(errno));
  if (pid > 0) return pid;
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != parent) ::_exit(1);  // the parent died before the line above
  ::dup2(out_fd, 1), ::dup2(out_fd, 2);
  if (out_fd > 2) ::close(out_fd);
  for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execv(binary.c_str(), argv.data());
  std::fprintf(stderr, "%s: cannot exec %s: %s\n", who, binary.c_str(), std::strerror(errno));
  ::_exit(127);
}

}  // namespace attnlab
