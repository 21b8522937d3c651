#include "framework/dist/world.h"

#include <cstdlib>
#include <stdexcept>

namespace attnlab {
namespace {
int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long long x = std::strtoll(v, &end, 10);
  if (*end != '\0' || x < 0)
    throw std::invalid_argument(std::string("environment ") + name + "='" + v +
                                "' is not a non-negative integer");
  return x;
}
std::string env_str(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}
}  // namespace

World world_from_env() {
  World w;
  w.world_size = env_int("WORLD_SIZE", 1);
  w.rank = env_int("RANK", 0);
  w.local_rank = env_int("LOCAL_RANK", 0);
  w.local_world_size = env_int("LOCAL_WORLD_SIZE", w.world_size);
  w.master_addr = env_str("MASTER_ADDR");
  w.master_port = env_str("MASTER_PORT");
  if (w.world_size < 1) throw std::invalid_argument("environment WORLD_SIZE must be >= 1");
  if (w.rank >= w.world_size)
    throw std::invalid_argument("environment RANK=" + std::to_string(w.rank) +
                                " is not below WORLD_SIZE=" + std::to_string(w.world_size));
  if (w.world_size > 1)
    throw std::invalid_argument(
        "WORLD_SIZE=" + std::to_string(w.world_size) +
        ": multi-process training (data/context parallel) is not implemented yet");
  return w;
}

}  // namespace attnlab
