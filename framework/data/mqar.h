// Multi-query associative recall (MQAR) as Zoology defines it (docs/data.md, "MQAR"). Each
// example of length T over a vocabulary V starts with `pairs` key-value bindings k1 v1 k2 v2 ...
// (keys distinct, drawn from [1, V/2); values distinct, from [V/2, V)); every key then appears
// once more as a query at position 2P + 2g, the gaps g distinct in [0, (T - 2P) / 2) with
// p(g) ∝ (g + 1)^(power_a - 1). The target at a query is its value; every other target is
// ignored. Fillers are 0, or uniform tokens over [0, V) with random_non_queries.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "framework/config/options.h"
#include "framework/data/epoch_order.h"
#include "framework/data/source.h"

namespace attnlab {

struct MqarConfig {
  int64_t pairs = 8;  ///< key-value pairs per example (Zoology's num_kv_pairs)
  std::string gaps = "power_law";
  double power_a = 0.01;  ///< Zoology's default
  bool random_non_queries = true;
  int64_t train_examples = 100000;  ///< a fixed training set, visited in epochs; 0 = fresh forever
  int64_t val_examples = 1000;
  template <class V> void visit(V& v) {
    v("pairs", pairs, "key-value pairs per example (4 * pairs <= data.seq_len)", Bounds{1, 1e7});
    v("gaps", gaps, "query positions: power_law (Zoology's p(g) ∝ (g+1)^(power_a-1)) or uniform",
      OneOf{{"power_law", "uniform"}});
    v("power_a", power_a, "exponent of the power-law gap distribution", Bounds{1e-6, 1e3});
    v("random_non_queries", random_non_queries, "fill non-query positions with random tokens, not 0");
    v("train_examples", train_examples, "size of the training set (0: a new example every time)",
      Bounds{0, 1e12});
    v("val_examples", val_examples, "size of the validation set", Bounds{1, 1e12});
  }
};

/// The sequence length T (data.seq_len) and vocabulary V (model.vocab_size) of the task.
struct MqarShape {
  int64_t seq_len = 0, vocab = 0;
};
/// Throws ConfigError naming data.seq_len / data.mqar.pairs / model.vocab_size when the
/// construction is impossible (T odd, 4P > T, fewer than P keys in [1, V/2)).
void check_mqar(const MqarConfig& cfg, const MqarShape& shape);
/// One example from its own seed: inputs and targets [T] (int64) written to the pointers.
void generate_mqar(const MqarConfig& cfg, const MqarShape& shape, uint64_t example_seed,
                   int64_t* inputs, int64_t* targets);

/// data.source: mqar. Training examples come from run.seed and an epoch order over
/// train_examples; validation examples from a separate stream.
class MqarSource : public DataSource {
 public:
  MqarSource(MqarConfig cfg, MqarShape shape, uint64_t seed, bool validation, int64_t rank,
             int64_t world);
  TokenBatch next(int64_t batch) override;
  TokenBatch sequential(int64_t first, int64_t batch) const override;
  bool answers_only() const override { return true; }

 private:
  TokenBatch examples(const std::vector<int64_t>& ids) const;
  uint64_t example_seed(int64_t id) const;
  MqarConfig cfg_;
  MqarShape shape_;
  uint64_t seed_;
  bool validation_;
  int64_t rank_, world_;
  std::unique_ptr<EpochOrder> order_;  ///< null: every training sample is a new example
};

}  // namespace attnlab
