// How the job's processes split the work (docs/parallelism.md): the dp x cp mesh, and which
// context-parallel strategy each layer uses.
#pragma once
#include <string>
#include <vector>

#include "framework/config/run_config.h"
#include "framework/dist/world.h"
#include "framework/model/language_model.h"

namespace attnlab {

/// The job's ranks as dp data-parallel replicas of cp context-parallel ranks each:
/// rank = dp_rank * cp + cp_rank (the cp ranks of one replica are consecutive).
struct Mesh {
  int64_t dp = 1, cp = 1, dp_rank = 0, cp_rank = 0;
};
/// The mesh parallel.{dp,cp} ask for on `world`; throws ConfigError when it does not fit.
Mesh make_mesh(const RunConfig& cfg, const World& world);

/// Throws ConfigError naming the first layer whose mixer has no context-parallel strategy that
/// works with `cp` ranks.
void check_context_parallel(LanguageModelImpl& model, int64_t cp);

/// parallel.cp_strategy as strategies in order of preference (empty for `auto`); throws
/// ConfigError for an unknown name or one that no layer of `model` implements.
std::vector<CpStrategy> cp_preference(const RunConfig& cfg, LanguageModelImpl& model);

/// "layers: gla state_gather, softmax allgather_kv": each distinct (mixer, strategy) once.
std::string describe_cp_plan(LanguageModelImpl& model, const std::vector<CpStrategy>& preference, int64_t cp);

}  // namespace attnlab
