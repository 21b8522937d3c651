// Console output that survives a closed pipe. `attnlab train ... | head` closes stdout early;
// with SIGPIPE ignored (ignore_sigpipe) a write then fails with EPIPE instead of
// killing the process, and the trainer treats that as a stop request: save, then exit.
#pragma once
#include <cstdio>
#include <string>

namespace attnlab {

/// Ignores SIGPIPE for the whole process (call once, early in main).
void ignore_sigpipe();
/// Writes and flushes `text`; false when the stream is gone (closed pipe, I/O error).
bool console_write(std::FILE* stream, const std::string& text);

}  // namespace attnlab
