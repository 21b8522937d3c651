// Positional embeddings added to the token embedding: none (position enters through the mixers,
// e.g. RoPE) or a learned absolute table (GPT-2's wpe).
#include <ATen/ops/aminmax.h>
#include <ATen/ops/embedding.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>

#include "framework/model/parts.h"

namespace attnlab {
namespace {

class LearnedPositions : public PositionEmbedding {
 public:
  explicit LearnedPositions(const PartShape& s) : rows_(s.max_seq_len) {
    weight = register_parameter("weight", at::zeros({s.max_seq_len, s.dim}));
  }
  at::Tensor forward(const at::Tensor& positions) override {
    if (positions.numel() > 0) {
      const auto [mn, mx] = at::aminmax(positions);
      const at::Tensor both = at::stack({mn, mx}).cpu();  // one host read
      const int64_t lo = both[0].item<int64_t>(), hi = both[1].item<int64_t>();
      TORCH_CHECK(lo >= 0 && hi < rows_, "model.positions: learned: position ", lo < 0 ? lo : hi,
                  " is outside the table of model.max_seq_len = ", rows_, " rows");
    }
    return at::embedding(weight, positions);
  }
  void init_parameters(const InitScales& s) override { init_normal(weight, s.std); }
  at::Tensor weight;  ///< [max_seq_len, D]

 private:
  int64_t rows_;
};

}  // namespace

void register_builtin_positions(Registry<PositionsEntry>& r) {
  r.add("none", {"no positional embedding (mixers that need positions use RoPE)",
                 [](const PartShape&) -> std::shared_ptr<PositionEmbedding> { return nullptr; }});
  r.add("learned", {"a learned absolute table [max_seq_len, D] added to the token embedding",
                    [](const PartShape& s) -> std::shared_ptr<PositionEmbedding> {
                      return std::make_shared<LearnedPositions>(s);
                    }});
}

}  // namespace attnlab
