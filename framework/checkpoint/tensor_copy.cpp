#include "framework/checkpoint/tensor_copy.h"

#include <fmt/format.h>

#include <set>
#include <stdexcept>

#include "framework/checkpoint/checkpoint_state.h"

namespace attnlab {

void copy_tensors_exact(const NamedTensors& targets, const std::map<std::string, at::Tensor>& source,
                        const std::string& origin) {
  std::set<std::string> expected;
  for (const auto& [name, dst] : targets) {
    expected.insert(name);
    auto it = source.find(name);
    if (it == source.end()) throw CheckpointError(origin + ": missing tensor " + name);
    const at::Tensor& src = it->second;
    if (src.scalar_type() != dst.scalar_type())
      throw CheckpointError(fmt::format("{}: tensor {} has dtype {}, expected {}", origin, name,
                                           c10::toString(src.scalar_type()),
                                           c10::toString(dst.scalar_type())));
    if (src.sizes() != dst.sizes())
      throw CheckpointError(fmt::format("{}: tensor {} has shape {}, expected {}", origin, name,
                                           c10::str(src.sizes()), c10::str(dst.sizes())));
  }
  for (const auto& [name, _] : source)
    if (!expected.count(name))
      throw CheckpointError(origin + ": unexpected tensor " + name + " (not part of this model)");
  at::NoGradGuard no_grad;
  for (const auto& [name, dst] : targets) at::Tensor(dst).copy_(source.at(name));
}

}  // namespace attnlab
