// The student of a linearization (docs/conversion.md, "Linearizing"): the teacher's model with
// the converted layers' mixers replaced, and the teacher's weights handed over by name.
#pragma once
#include <ATen/core/Tensor.h>
#include <yaml-cpp/yaml.h>

#include <map>
#include <string>
#include <vector>

#include "framework/config/run_config.h"
#include "framework/model/language_model.h"
#include "tools/convert/linearize_config.h"

namespace attnlab::convert {

/// The teacher's mixer `spec` as a YAML mapping {type, options...}.
YAML::Node mixer_spec_node(const MixerSpec& spec);

/// The student's model.pattern, one entry per layer: the teacher's mixer, or for each layer in
/// `converted` (each must be softmax) convert.target with every option it leaves unset and the
/// teacher layer also has (heads, kv_heads, head_dim, rope_base, ...) taken from the teacher.
YAML::Node student_pattern(const ModelConfig& teacher, const ConvertConfig& c, const std::vector<int64_t>& converted);

/// Copies the teacher's weights into `student` by name and freezes them: everything outside the
/// converted mixers, and inside each the parameters its attention_takeover() inherits. Returns
/// the converted mixers' other (new) parameters, which stay trainable. Throws ConfigError naming
/// `origin` and the tensor for a shape that differs, an inherited tensor the teacher lacks, a
/// teacher tensor nothing takes (e.g. a bias the target has no place for), a converted mixer
/// that is not a conversion target, or a teacher option the target does not implement.
std::vector<std::string> take_teacher_weights(LanguageModel& student, const ModelConfig& teacher,
                                              const std::map<std::string, at::Tensor>& teacher_weights,
                                              const std::vector<int64_t>& converted, const std::string& origin);

}  // namespace attnlab::convert
