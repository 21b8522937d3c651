// World: this process's place in a job, read from the variables torchrun sets: RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
// Unset means a single process. Collectives are not implemented yet; the trainer uses the
// world for rank-0-only output and data sharding.
#pragma once
#include <cstdint>
#include <string>

namespace attnlab {

struct World {
  int64_t rank = 0, world_size = 1, local_rank = 0, local_world_size = 1;
  std::string master_addr, master_port;
  bool is_main() const { return rank == 0; }
};

/// Throws std::invalid_argument naming the variable when a value is malformed or inconsistent.
World world_from_env();

}  // namespace attnlab
