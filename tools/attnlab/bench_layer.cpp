#include "tools/attnlab/bench_layer.h"

#include <ATen/ops/randn.h>
#include <fmt/format.h>

#include <algorithm>
#include <torch/csrc/autograd/autograd.h>

#include "framework/config/run_config.h"
#include "framework/model/mixer.h"
#include "tools/common/bench_rows.h"
#include "tools/common/median_time.h"
#include "tools/common/memory_meter.h"

namespace attnlab::cli {

bool is_layer_bench(const std::string& mixer) { return mixer == "titans" || mixer == "grassmann"; }

int run_layer_bench(const LayerBenchArgs& a) {
  struct Row {
    std::string label, type, options, kernel = "auto";
  };
  const std::string name = a.mixer + (a.options == "{}" ? "" : " " + a.options);
  std::vector<Row> rows{{name, a.mixer, a.options}};
  // titans: auto is the fused CPU kernel; chunked, the torch dual form it replaced.
  if (a.mixer == "titans") rows.back().label += " fused", rows.push_back({name + " chunked", a.mixer, a.options, "chunked"});
  rows.push_back({"gla", "gla", "{}"});
  rows.push_back({"softmax (sdpa)", "softmax", "{}"});
  fmt::print("layer benchmark, fp32 CPU, B {} D {}, median of {} (tokens/s; x: time vs the first length)\n", a.batch,
             a.dim, a.reps);
  for (const Row& row : rows) {
    const MixerSpec spec = mixer_spec(row.type, row.options);
    const MixerShape shape{a.dim, 0, 1, a.seq.empty() ? 1 : *std::max_element(a.seq.begin(), a.seq.end())};
    auto m = MixerRegistry::instance().find(row.type)->create(*spec.options, shape);
    std::vector<double> fwd, both;
    for (int64_t T : a.seq) {
      const at::Tensor x = at::randn({a.batch, T, a.dim}).requires_grad_();
      const MixerContext ctx = kernel_context(row.kernel, /*training=*/true);
      const tools::MemoryWindow mem;
      fwd.push_back(tools::median_ms([&] { at::NoGradGuard g; m->forward(x, ctx); }, a.reps));
      both.push_back(tools::median_ms([&] {
        const at::Tensor y = m->forward(x, ctx);
        torch::autograd::grad({y.sum()}, {x});
      }, a.reps));
      tools::add_bench_row(a.mixer, row.label, T, a.batch * T, fwd.back(), both.back(), mem.extra_mb());
    }
    std::string line = fmt::format("{:<40}", row.label);
    for (size_t i = 0; i < a.seq.size(); ++i) {
      const double tokens = static_cast<double>(a.batch * a.seq[i]);
      line += fmt::format(" | T {:>6}: fwd {:>8.0f} fwd+bwd {:>8.0f}", a.seq[i], tokens / fwd[i] * 1e3, tokens / both[i] * 1e3);
    }
    if (a.seq.size() > 1)
      line += fmt::format(" | fwd+bwd time {:.1f}x for {:.0f}x T", both.back() / both.front(),
                          static_cast<double>(a.seq.back()) / static_cast<double>(a.seq.front()));
    fmt::print("{}\n", line);
  }
  return 0;
}

}  // namespace attnlab::cli
