// A run folder made from weights alone (an import, a linearized student): config.yaml and a
// step-0 checkpoint whose AdamW moments are zero, so that `train --resume` starts the optimizer
// fresh from these weights and eval / generate load them like any run's.
#pragma once
#include <string>

#include "framework/checkpoint/safetensors.h"
#include "framework/config/run_config.h"

namespace attnlab::convert {

void write_weights_as_run(const std::string& dir, const NamedTensors& params, const RunConfig& cfg);

}  // namespace attnlab::convert
