// An exclusive lock on a run folder (flock on <run>/.lock), held for the life of a training
// process, so that two `attnlab train` processes never write the same run, and so that leftovers
// found at start (step-N.tmp folders, latest.tmp.* files) are known to belong to dead processes.
// The kernel drops the lock when the process dies, even by kill -9.
#pragma once
#include <string>

namespace attnlab {

class RunLock {
 public:
  /// Creates `run_dir` if needed; throws naming the folder (and the holder's pid) when taken.
  explicit RunLock(const std::string& run_dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

/// An exclusive lock on the file `path` (created, with its folder, if needed) that waits for
/// its holder, for work that many processes may start at once but only one should do.
class WaitingFileLock {
 public:
  explicit WaitingFileLock(const std::string& path);
  ~WaitingFileLock();
  WaitingFileLock(const WaitingFileLock&) = delete;
  WaitingFileLock& operator=(const WaitingFileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace attnlab
