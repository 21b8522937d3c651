// Checkpoints: <run>/checkpoints/step-<N>/{model.safetensors, optimizer.safetensors,
// state.json}. The save sequence (docs/checkpoints.md) writes step-<N>.tmp/, fsyncs, renames it
// to step-<N>, then replaces `latest` atomically and prunes to the newest `keep`. A step that
// already has a complete checkpoint is never removed to be re-saved. Reading verifies the size
// and XXH64 of every file, the exact tensor set and dtypes (against the caller's model) and that
// every weight is finite. Resume and eval take the newest checkpoint that verifies; `latest` is
// a pointer for people and tools, never trusted alone.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "framework/checkpoint/checkpoint_state.h"
#include "framework/checkpoint/safetensors.h"

namespace attnlab {

struct Checkpoint {
  std::string dir;
  CheckpointState state;
  SafetensorsFile model, optimizer;
};

/// Writes step `state.step` (filling state.files) and returns its folder.
std::string save_checkpoint(const std::string& run_dir, const NamedTensors& model,
                            const NamedTensors& optimizer, CheckpointState state, int64_t keep);
/// Reads and verifies one checkpoint folder; throws CheckpointError naming the file.
Checkpoint read_checkpoint(const std::string& dir);

/// Complete-looking step-<N> folders of a run, newest first (not yet verified).
std::vector<std::string> checkpoint_folders(const std::string& run_dir);
/// True when the run holds any checkpoint folder or a `latest` pointer.
bool has_checkpoints(const std::string& run_dir);
/// The folder `latest` names, if the pointer exists (the folder itself may not).
std::optional<std::string> latest_checkpoint(const std::string& run_dir);

struct NewestCheckpoint {
  std::optional<Checkpoint> checkpoint;  ///< empty: the run has no checkpoint folders
  std::vector<std::string> rejected;     ///< newer folders that failed verification, and why
};
/// The newest checkpoint of a run that verifies. Throws CheckpointError when folders exist but
/// none verifies (never "start fresh" over checkpoints).
NewestCheckpoint newest_checkpoint(const std::string& run_dir);
/// `path`: a checkpoint folder, or a run folder (then its newest verified checkpoint; newer
/// folders that failed verification are described in `rejected` when given).
Checkpoint load_checkpoint(const std::string& path, std::vector<std::string>* rejected = nullptr);

/// Removes what dead processes left in <run>/checkpoints: step-*.tmp, *.old.*, *.del.* folders
/// and latest.tmp.* files. Call only while holding the run's lock. Returns what it removed.
std::vector<std::string> remove_checkpoint_leftovers(const std::string& run_dir);
/// Renames a checkpoint folder that failed verification to <dir>.corrupt.<n> (kept for
/// inspection, out of the way of resume and pruning); returns the new name.
std::string set_aside_checkpoint(const std::string& dir);

}  // namespace attnlab
