// Checkpoints: <run>/checkpoints/step-<N>/{model.safetensors, optimizer.safetensors,
// state.json}. Written into step-<N>.tmp/, fsynced, renamed; then `latest` (a one-line file
// naming the folder) is replaced atomically. Only complete checkpoints are ever visible, and
// only the newest `keep` are kept.
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "framework/checkpoint/safetensors.h"

namespace attnlab {

struct Checkpoint {
  std::string dir;
  SafetensorsFile model, optimizer;
  nlohmann::json state;
};

/// Returns the checkpoint folder written.
std::string save_checkpoint(const std::string& run_dir, int64_t step, const NamedTensors& model,
                            const NamedTensors& optimizer, const nlohmann::json& state,
                            int64_t keep);
/// The folder `latest` names, if any.
std::optional<std::string> latest_checkpoint(const std::string& run_dir);
/// `path`: a checkpoint folder or a run folder (then its latest). Throws naming the file.
Checkpoint load_checkpoint(const std::string& path);

}  // namespace attnlab
