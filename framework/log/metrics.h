// Run outputs on rank 0: metrics.jsonl (one JSON object per logged step, appended and flushed)
// and TensorBoard scalars under the same names.
#pragma once
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "framework/log/tensorboard.h"

namespace attnlab {

class MetricsSink {
 public:
  /// `dir` empty: a sink that drops everything (non-zero ranks, benchmarks).
  MetricsSink(const std::string& dir, bool tensorboard);
  void log(int64_t step, const std::map<std::string, double>& values);

 private:
  std::ofstream jsonl_;
  std::unique_ptr<EventWriter> events_;
};

}  // namespace attnlab
