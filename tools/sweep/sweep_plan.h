// What `attnlab sweep` runs (docs/ablations.md, "Sweeps"): the axes of a sweep, from --grid
// arguments and a recipe's `sweep:` section, and their expansion into named runs.
//   --grid key=v1,v2,...              one axis; values split at top-level commas, so a value may
//                                     be a YAML flow map or list: model.mixer={type: swa, window: 64},{type: gla}
//   sweep: {grid: {key: [v1, v2]}, zip: [{k1: [a, b], k2: [c, d]}], seeds: N}
// A zipped axis moves its keys together (k1 = a with k2 = c, then b with d), for pairs such as
// "mixer × width at equal parameter count"; the runs are the cartesian product of all axes, then
// of run.seed = seed, seed + 1, ... when seeds > 1.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "framework/config/yaml_source.h"

namespace attnlab::sweep {

struct SweepAxis {
  std::vector<std::string> keys;                 ///< one, or several zipped
  std::vector<std::vector<std::string>> points;  ///< points[i][k]: value of keys[k] at point i (YAML text)
};

struct SweepRun {
  std::string name;                    ///< folder name inside the sweep folder, from the values
  std::vector<std::string> overrides;  ///< key=value, as --set takes them
  std::vector<std::pair<std::string, std::string>> values;  ///< key, value of every axis
};

/// "key=v1,v2,...": throws ConfigError naming `--grid` and the argument when malformed.
SweepAxis parse_grid_argument(const std::string& arg);

/// The axes of `sweep:` in `src` (none without it) and its seeds (1 unless set); errors name the
/// recipe and the YAML path.
std::vector<SweepAxis> sweep_section_axes(const YamlSource& src, int64_t* seeds);

/// Every combination, in order (the first axis varies slowest). `seeds` > 1 adds run.seed =
/// base_seed + i as the last axis. Names are unique: each key's last component (the whole key
/// where two axes share it) and its value, letters, digits, '.' and '-' kept.
std::vector<SweepRun> expand_sweep(std::vector<SweepAxis> axes, int64_t seeds, int64_t base_seed);

/// `text` split at commas outside {}, [] and quotes.
std::vector<std::string> split_top_level(const std::string& text);

}  // namespace attnlab::sweep
