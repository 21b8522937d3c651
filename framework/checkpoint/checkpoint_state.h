// state.json of a checkpoint: the training counters, the config hash, and the size and XXH64 of
// every other file in the folder, sealed by an XXH64 of the state itself (docs/checkpoints.md).
// Parsing checks every field's type and range and the counters' internal consistency; an error
// names the file and the field. Checks against the run's config are the trainer's
// (framework/train/trainer_run_dir.cpp).
#pragma once
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>

namespace attnlab {

/// Any problem with a checkpoint on disk: missing, torn, corrupted or inconsistent.
class CheckpointError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// A checkpoint in a format this build does not read (a newer attnlab wrote it): never skipped
/// over in favour of an older one.
class CheckpointFormatError : public CheckpointError {
  using CheckpointError::CheckpointError;
};

struct FileDigest {
  int64_t bytes = 0;
  std::string xxh64;  ///< 16 hex digits
};

struct CheckpointState {
  int64_t step = 0;             ///< optimizer steps taken, skipped ones included
  int64_t optimizer_steps = 0;  ///< steps the optimizer applied (step - skipped_steps)
  int64_t skipped_steps = 0;    ///< non-finite steps skipped by nan_policy: skip
  int64_t data_cursor = 0;      ///< the train sampler's position (samples per rank)
  int64_t train_steps = 0;      ///< train.steps of the run that wrote it (the lr horizon)
  int64_t seed = 0;
  int64_t world_size = 1;       ///< data-parallel ranks of the run that wrote it
  std::string config_hash;      ///< RunConfig::model_hash()
  std::string attnlab_version;
  std::map<std::string, FileDigest> files;  ///< every other file of the checkpoint folder
};

constexpr int kCheckpointFormat = 1;

/// The JSON text written as state.json (with its own checksum field).
std::string encode_state(const CheckpointState& s);
/// Parses and validates state.json text; `file` names it in every error.
CheckpointState decode_state(const std::string& text, const std::string& file);

}  // namespace attnlab
