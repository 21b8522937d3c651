// safetensors reader/writer (docs/formats.md, "safetensors"): u64 header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the
// data buffer. The writer pads the header with spaces so data starts 8-aligned and writes
// atomically. The reader checks every offset, size, dtype and that the buffer has no holes or
// overlaps; a malformed file raises SafetensorsError naming the file and the problem.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace attnlab {

class SafetensorsError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

/// Serialises tensors (any device; copied to CPU contiguous) into safetensors bytes.
std::string encode_safetensors(const NamedTensors& tensors,
                               const std::map<std::string, std::string>& metadata = {});
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

struct SafetensorsFile {
  std::map<std::string, at::Tensor> tensors;  // CPU tensors owning their memory
  std::map<std::string, std::string> metadata;
};
/// `name` is used in error messages only.
SafetensorsFile decode_safetensors(const std::string& bytes, const std::string& name);
SafetensorsFile load_safetensors(const std::string& path);

}  // namespace attnlab
