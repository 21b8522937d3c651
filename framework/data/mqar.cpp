#include "framework/data/mqar.h"

#include <ATen/ops/empty.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "framework/config/config_error.h"

namespace attnlab {
namespace {

// Uniform integer in [0, n) from one 64-bit draw (Lemire's multiply-shift; the tiny bias is
// below 2^-40 for the sizes here and the result is the same on every platform).
int64_t uniform_below(std::mt19937_64& rng, int64_t n) {
  return static_cast<int64_t>((static_cast<unsigned __int128>(rng()) * static_cast<uint64_t>(n)) >> 64);
}

double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// `count` distinct values of [lo, hi) in random order: a partial Fisher-Yates over a lazily
// materialised identity (only the touched slots are stored).
std::vector<int64_t> distinct_in_random_order(std::mt19937_64& rng, int64_t lo, int64_t hi,
                                              int64_t count) {
  std::vector<std::pair<int64_t, int64_t>> moved;  // slot -> value, for the few slots swapped
  auto value_at = [&](int64_t slot) {
    for (const auto& [s, v] : moved)
      if (s == slot) return v;
    return slot;
  };
  auto set = [&](int64_t slot, int64_t v) {
    for (auto& [s, old] : moved)
      if (s == slot) return void(old = v);
    moved.emplace_back(slot, v);
  };
  const int64_t n = hi - lo;
  std::vector<int64_t> out(count);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t j = i + uniform_below(rng, n - i);
    const int64_t vi = value_at(i), vj = value_at(j);
    set(j, vi);
    out[i] = lo + vj;
  }
  return out;
}

// `count` distinct gaps of [0, space), each draw proportional to the weights of those not yet
// taken (successive sampling without replacement, the distribution of numpy's
// choice(replace=False, p=...) that Zoology calls).
std::vector<int64_t> draw_gaps(std::mt19937_64& rng, const MqarConfig& cfg, int64_t space,
                               int64_t count) {
  std::vector<double> w(space);
  for (int64_t g = 0; g < space; ++g)
    w[g] = cfg.gaps == "uniform" ? 1.0 : cfg.power_a * std::pow(static_cast<double>(g + 1), cfg.power_a - 1);
  double total = 0;
  for (double x : w) total += x;
  std::vector<int64_t> out(count);
  for (int64_t i = 0; i < count; ++i) {
    double r = uniform01(rng) * total;
    int64_t pick = -1;
    for (int64_t g = 0; g < space; ++g) {
      if (w[g] == 0) continue;
      pick = g;  // the last untaken slot absorbs rounding at the top end
      if ((r -= w[g]) < 0) break;
    }
    out[i] = pick;
    total -= w[pick];
    w[pick] = 0;
  }
  return out;
}

}  // namespace

void check_mqar(const MqarConfig& cfg, const MqarShape& shape) {
  std::vector<std::string> errors;
  const int64_t T = shape.seq_len, V = shape.vocab, P = cfg.pairs;
  if (T % 2 != 0)
    errors.push_back(fmt::format("config: data.seq_len ({}) must be even for data.source: mqar "
                                 "(pairs and queries take two positions each)", T));
  if (4 * P > T)
    errors.push_back(fmt::format("config: data.mqar.pairs ({}) needs 4 * pairs <= data.seq_len ({}): "
                                 "room for the bindings and one query slot per pair", P, T));
  if (V / 2 - 1 < P || V - V / 2 < P)
    errors.push_back(fmt::format("config: model.vocab_size ({}) has {} key tokens [1, V/2) for "
                                 "data.mqar.pairs ({}) distinct keys", V, V / 2 - 1, P));
  if (!errors.empty()) throw ConfigError(errors);
}

void generate_mqar(const MqarConfig& cfg, const MqarShape& shape, uint64_t example_seed,
                   int64_t* inputs, int64_t* targets) {
  const int64_t T = shape.seq_len, V = shape.vocab, P = cfg.pairs;
  std::mt19937_64 rng(example_seed);
  const std::vector<int64_t> keys = distinct_in_random_order(rng, 1, V / 2, P);
  const std::vector<int64_t> values = distinct_in_random_order(rng, V / 2, V, P);
  const std::vector<int64_t> gaps = draw_gaps(rng, cfg, (T - 2 * P) / 2, P);
  std::fill(inputs, inputs + T, 0);
  std::fill(targets, targets + T, kIgnoreTarget);
  for (int64_t i = 0; i < P; ++i) {
    inputs[2 * i] = keys[i];
    inputs[2 * i + 1] = values[i];
    const int64_t query = 2 * P + 2 * gaps[i];
    inputs[query] = keys[i];
    targets[query] = values[i];  // the token after the query is its value
  }
  if (cfg.random_non_queries)  // keys start at 1 and values at V/2, so 0 marks exactly the fillers
    for (int64_t t = 0; t < T; ++t)
      if (inputs[t] == 0) inputs[t] = uniform_below(rng, V);
}

MqarSource::MqarSource(MqarConfig cfg, MqarShape shape, uint64_t seed, bool validation,
                       int64_t rank, int64_t world)
    : cfg_(std::move(cfg)), shape_(shape), seed_(seed), validation_(validation), rank_(rank), world_(world) {
  check_mqar(cfg_, shape_);
  if (!validation_ && cfg_.train_examples > 0)
    order_ = std::make_unique<EpochOrder>(cfg_.train_examples, seed_);
}

uint64_t MqarSource::example_seed(int64_t id) const {
  // The two splits are different streams of the same seed: a validation example is never a
  // training one except by chance.
  const uint64_t stream = validation_ ? 0x76616cull : 0x747261696eull;  // "val", "train"
  return mix64(mix64(mix64(static_cast<uint64_t>(seed_)) ^ stream) ^ static_cast<uint64_t>(id));
}

TokenBatch MqarSource::examples(const std::vector<int64_t>& ids) const {
  const int64_t B = static_cast<int64_t>(ids.size()), T = shape_.seq_len;
  TokenBatch out{at::empty({B, T}, at::kLong), at::empty({B, T}, at::kLong)};
  int64_t* in = out.inputs.data_ptr<int64_t>();
  int64_t* tg = out.targets.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) generate_mqar(cfg_, shape_, example_seed(ids[b]), in + b * T, tg + b * T);
  return out;
}

TokenBatch MqarSource::next(int64_t batch) {
  std::vector<int64_t> ids(batch);
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t g = (cursor + b) * world_ + rank_;
    ids[b] = order_ ? order_->at(g) : g;
  }
  cursor += batch;
  return examples(ids);
}

TokenBatch MqarSource::sequential(int64_t first, int64_t batch) const {
  std::vector<int64_t> ids(batch);
  const int64_t n = validation_ ? cfg_.val_examples : cfg_.train_examples;
  for (int64_t b = 0; b < batch; ++b) ids[b] = n > 0 ? (first + b) % n : first + b;
  return examples(ids);
}

}  // namespace attnlab
