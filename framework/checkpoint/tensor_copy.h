// Loading tensors by name into live ones (model weights, optimizer moments): the file must hold
// exactly the expected set, each with the same shape and dtype. A silent conversion (an I64
// tensor into a float parameter) or an ignored extra tensor would hide a wrong file.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>

#include "framework/checkpoint/safetensors.h"

namespace attnlab {

/// Copies source[name] into every target; throws CheckpointError naming `origin`, the tensor
/// and both shapes or dtypes on any mismatch, a missing tensor or an extra one.
void copy_tensors_exact(const NamedTensors& targets, const std::map<std::string, at::Tensor>& source,
                        const std::string& origin);

}  // namespace attnlab
