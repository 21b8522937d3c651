#include "framework/log/metrics.h"

#include <nlohmann/json.hpp>

#include <cmath>

namespace attnlab {

MetricsSink::MetricsSink(const std::string& dir, bool tensorboard) {
  if (dir.empty()) return;
  jsonl_.open(dir + "/metrics.jsonl", std::ios::app);
  if (tensorboard) events_ = std::make_unique<EventWriter>(dir);
}

void MetricsSink::log(int64_t step, const std::map<std::string, double>& values) {
  if (!jsonl_.is_open()) return;
  nlohmann::json row = {{"step", step}};
  for (const auto& [k, v] : values) {
    row[k] = std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
    if (events_) events_->scalar(k, step, v);
  }
  jsonl_ << row.dump() << "\n" << std::flush;
}

}  // namespace attnlab
