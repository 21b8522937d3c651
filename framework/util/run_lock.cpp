#include "framework/util/run_lock.h"

#include <errno.h>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace attnlab {
namespace {

/// `path` opened for flock, created with its folder if needed; throws naming `what` and errno.
int open_lock_file(const std::string& path, const char* what) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(path + ": cannot open the " + what + ": " + std::strerror(errno));
  return fd;
}

}  // namespace

RunLock::RunLock(const std::string& run_dir) {
  fd_ = open_lock_file(run_dir + "/.lock", "run lock");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    const ssize_t n = ::pread(fd_, buf, sizeof(buf) - 1, 0);
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error(run_dir + ": another attnlab process" +
                             (n > 0 ? " (pid " + std::string(buf, static_cast<size_t>(n)) + ")" : "") +
                             " is training this run; wait for it or choose another run.name");
  }
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
    // The pid is only a hint in the error above; the lock itself is what matters.
  }
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);
}

WaitingFileLock::WaitingFileLock(const std::string& path) {
  fd_ = open_lock_file(path, "lock file");
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
  if (errno == EWOULDBLOCK) {
    std::fprintf(stderr, "note: waiting for another attnlab process holding %s\n", path.c_str());
    int rc = 0;
    while ((rc = ::flock(fd_, LOCK_EX)) != 0 && errno == EINTR) {
    }
    if (rc == 0) return;
  }
  // A filesystem without flock (some network mounts) cannot serialise us: carry on unlocked.
  std::fprintf(stderr, "warning: %s: cannot take the lock (%s); going on without it\n", path.c_str(),
               std::strerror(errno));
  ::close(fd_);
  fd_ = -1;
}

WaitingFileLock::~WaitingFileLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace attnlab
