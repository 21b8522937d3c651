#include "framework/log/console.h"

#include <csignal>

namespace attnlab {

void ignore_sigpipe() { std::signal(SIGPIPE, SIG_IGN); }

bool console_write(std::FILE* stream, const std::string& text) {
  if (std::ferror(stream)) return false;  // an earlier write already failed
  const bool ok = std::fwrite(text.data(), 1, text.size(), stream) == text.size();
  return std::fflush(stream) == 0 && ok;
}

}  // namespace attnlab
