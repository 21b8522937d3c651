// Fuzz targets for the text readers: checkpoint state.json and YAML recipes (with `extends:`
// files and `--set` overrides).
#include <nlohmann/json.hpp>

#include <fstream>

#include "framework/checkpoint/checkpoint_state.h"
#include "framework/config/run_config.h"
#include "framework/util/hash.h"
#include "tests/fuzz/targets.h"

namespace attnlab::fuzz {
namespace {

// A mixer that exists only in the fuzz binary (which links no layers), so that recipes reach
// mixer option parsing: one option of each kind the visitors handle.
struct FuzzMixerOptions {
  int64_t heads = 4;
  double gate = 0.5;
  std::string kind = "a";
  bool flag = false;
  std::vector<int64_t> sizes;
  template <class V> void visit(V& v) {
    v("heads", heads, "heads", Bounds{1, 64});
    v("gate", gate, "gate", Bounds{0, 1});
    v("kind", kind, "kind", OneOf{{"a", "b"}});
    v("flag", flag, "flag");
    v("sizes", sizes, "sizes");
  }
};
const bool registered = MixerRegistry::instance().add("fuzzmix", [] {
  MixerEntry e;
  e.description = "fuzz-only mixer";
  e.parse = [](ParseVisitor& v) -> std::shared_ptr<MixerOptions> {
    auto box = std::make_shared<detail::OptionsBox<FuzzMixerOptions>>();
    box->value.visit(v);
    return box;
  };
  e.create = nullptr;
  return e;
}());

CheckpointState sample_state(int64_t step) {
  CheckpointState s;
  s.step = step, s.optimizer_steps = step - step / 3, s.skipped_steps = step / 3;
  s.data_cursor = 16 * step, s.train_steps = 1000, s.seed = 1234;
  s.config_hash = "00112233445566ff", s.attnlab_version = "0.1.0";
  s.files["model.safetensors"] = {123456, "0123456789abcdef"};
  s.files["optimizer.safetensors"] = {246912, "fedcba9876543210"};
  return s;
}

// Re-computes the seal of a mutated state so the field checks behind it get exercised.
std::string reseal(const std::string& text) {
  try {
    nlohmann::json j = nlohmann::json::parse(text);
    if (!j.is_object()) return text;
    j.erase("checksum");
    j["checksum"] = hex64(xxh64(j.dump()));
    return j.dump(2);
  } catch (const nlohmann::json::exception&) {
    return text;
  }
}

const char* kRecipe = R"(run: {name: fuzz, dir: runs, seed: 7}
model:
  dim: 64
  layers: 2
  mixer: {type: fuzzmix, heads: 2, gate: 0.25, kind: b, flag: true, sizes: [1, 2, 3]}
data: {dir: data, seq_len: 32}
optim: {lr: 0.001, schedule: wsd, warmup_steps: 5}
train: {steps: 10, batch_size: 4}
eval: {every: 0}
checkpoint: {every: 5, keep: 2}
log: {every: 1, tensorboard: false}
)";

}  // namespace

Target state_target() {
  Target t;
  t.name = "state";
  t.seeds = {encode_state(sample_state(0)), encode_state(sample_state(999)), encode_state(sample_state(1000))};
  t.tokens = boundary_numbers();
  for (const char* tok : {"\"", "{", "}", "[", "]", ",", ":", "\"step\"", "\"files\"", "\"bytes\"", "\"xxh64\"",
                          "\"../model.safetensors\"", "\"state.json\"", "null", "true", "{}", "[]"})
    t.tokens.emplace_back(tok);
  t.make_input = [](const std::string& seed, const std::string& other, Mutator& m) {
    std::string s = m.mutate(seed, other);
    return m.below(5) < 2 ? reseal(s) : s;
  };
  t.run = [](const std::string& input, Mutator&) {
    CheckpointState s = decode_state(input, "fuzz/state.json");
    // Accepted states re-encode to something that decodes to the same counters.
    CheckpointState again = decode_state(encode_state(s), "re-encoded");
    if (again.step != s.step || again.files.size() != s.files.size()) throw std::logic_error("state round trip");
    return true;
  };
  t.own_error = [](const std::exception& e) { return dynamic_cast<const CheckpointError*>(&e) != nullptr; };
  return t;
}

Target yaml_target(const std::string& scratch) {
  Target t;
  t.name = "yaml";
  (void)registered;
  std::ofstream(scratch + "/base.yaml") << "optim: {lr: 0.01}\ntrain: {steps: 3}\n";
  std::ofstream(scratch + "/mixer.yaml") << "model:\n  mixer: {type: fuzzmix, heads: 8}\n";
  t.seeds = {kRecipe, std::string("extends: [base.yaml, mixer.yaml]\n") + kRecipe,
             "extends: mixer.yaml\nmodel: {pattern: [fuzzmix, {type: fuzzmix, kind: a}], dim: &d 32}\neval: {batches: *d}\n",
             "a: &x [1, 2]\nb: &y [*x, *x]\nc: [*y, *y]\nmodel: {mixer: fuzzmix}\n", "{}"};
  t.tokens = boundary_numbers();
  for (const char* tok : {"&a ", "*a", "<<: ", "!!binary ", "!!str ", "{", "}", "[", "]", "- ", ": ", "\n  ", "\n",
                          "%YAML 1.2\n", "---\n", "...\n", "? ", "|\n  ", ">\n  ", "'", "\"", "#", "\t",
                          "extends: ", "extends: [base.yaml, base.yaml]", "extends: /dev/zero", "extends: .",
                          "type: ", "fuzzmix", "pattern: ", "mixer: ", "model: ", "name: ..", "~", "null"})
    t.tokens.emplace_back(tok);
  t.make_input = [](const std::string& seed, const std::string& other, Mutator& m) { return m.mutate(seed, other); };
  t.run = [scratch](const std::string& input, Mutator& m) {
    RunConfig cfg;
    const uint64_t route = m.below(8);
    if (route == 0) {  // through a file, so `extends:` resolution runs
      const std::string path = scratch + "/recipe.yaml";
      std::ofstream(path, std::ios::binary | std::ios::trunc) << input;
      cfg = load_run_config(path, {});
    } else if (route == 1) {  // as a --set override on a valid recipe
      const std::string path = scratch + "/valid.yaml";
      std::ofstream(path, std::ios::binary | std::ios::trunc) << kRecipe;
      cfg = load_run_config(path, {input.substr(0, 256)});
    } else {
      cfg = parse_run_config(load_yaml_text(input, "fuzz.yaml"));
    }
    // Accepted configs round-trip through their own YAML output.
    RunConfig again = parse_run_config(load_yaml_text(cfg.to_yaml(), "resolved.yaml"));
    if (again.to_yaml() != cfg.to_yaml()) throw std::logic_error("config does not round-trip");
    return true;
  };
  t.own_error = [](const std::exception& e) { return dynamic_cast<const ConfigError*>(&e) != nullptr; };
  return t;
}

}  // namespace attnlab::fuzz
