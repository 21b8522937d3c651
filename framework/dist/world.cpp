#include "framework/dist/world.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <stdexcept>

namespace attnlab {
namespace {
bool has(const char* name) {
  const char* v = std::getenv(name);
  return v && *v;
}
int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v, &end, 10);
  if (*end != '\0' || x < 0 || errno == ERANGE)
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
  // The first launcher whose variables are present wins: torchrun's, then Slurm's, then MPI's.
  struct Names { const char *rank, *size, *local_rank, *local_size, *launcher; };
  const Names launchers[] = {
      {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "torchrun"},
      {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE", "slurm"},
      {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
       "OMPI_COMM_WORLD_LOCAL_SIZE", "mpi"}};
  Names n = launchers[0];
  for (const Names& l : launchers)
    if (has(l.rank) || has(l.size)) {
      n = l;
      w.launcher = l.launcher;
      break;
    }
  // attnlab launch speaks torchrun's protocol and says so for the messages.
  if (w.launcher == "torchrun" && env_str("ATTNLAB_LAUNCHER") == "attnlab-launch") w.launcher = "attnlab launch";
  w.world_size = env_int(n.size, 1);
  w.rank = env_int(n.rank, 0);
  w.local_rank = env_int(n.local_rank, 0);
  w.local_world_size = env_int(n.local_size, w.world_size);
  w.master_addr = env_str("MASTER_ADDR");
  w.master_port = env_str("MASTER_PORT");
  w.agent_store = env_str("TORCHELASTIC_USE_AGENT_STORE") == "True";
  w.restart_count = env_int("TORCHELASTIC_RESTART_COUNT", 0);
  if (w.world_size < 1) throw std::invalid_argument(std::string("environment ") + n.size + " must be >= 1");
  if (w.rank >= w.world_size)
    throw std::invalid_argument(std::string("environment ") + n.rank + "=" + std::to_string(w.rank) +
                                " is not below " + n.size + "=" + std::to_string(w.world_size));
  if (w.local_rank >= w.local_world_size)
    throw std::invalid_argument(std::string("environment ") + n.local_rank + "=" + std::to_string(w.local_rank) +
                                " is not below " + n.local_size + "=" + std::to_string(w.local_world_size));
  return w;
}

int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  const bool ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  if (fd >= 0) ::close(fd);
  if (!ok) throw std::runtime_error("cannot find a free TCP port on 127.0.0.1");
  return ntohs(a.sin_port);
}

}  // namespace attnlab
