// World: this process's place in a job, read from the launcher's environment. torchrun (and
// anything speaking its protocol) sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT, and TORCHELASTIC_USE_AGENT_STORE / TORCHELASTIC_RESTART_COUNT when
// its agent hosts the store (docs/parallelism.md). When RANK and WORLD_SIZE are absent, Slurm's
// SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID and Open MPI's OMPI_COMM_WORLD_* are read
// instead. Nothing set means a single process.
#pragma once
#include <cstdint>
#include <string>

namespace attnlab {

struct World {
  int64_t rank = 0, world_size = 1, local_rank = 0, local_world_size = 1;
  std::string master_addr, master_port;
  /// torchrun's agent hosts the TCPStore: every rank is a client, keys under
  /// /worker/attempt_<restart_count>.
  bool agent_store = false;
  int64_t restart_count = 0;
  std::string launcher = "none";  ///< torchrun | attnlab launch | slurm | mpi | none (for messages)
  bool is_main() const { return rank == 0; }
};

/// Throws std::invalid_argument naming the variable when a value is malformed or inconsistent.
World world_from_env();

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close): for
/// a single-node rendezvous and the multi-process tests.
int free_loopback_port();

}  // namespace attnlab
