// attnlab data prepare | config show | list mixers | list parts
#include <fmt/format.h>

#include "framework/data/prepare.h"
#include "framework/model/layouts.h"
#include "framework/model/mixer.h"
#include "framework/model/parts.h"
#include "tools/attnlab/commands.h"

namespace attnlab::cli {

void add_data(CLI::App& app, Action& action) {
  auto* data = app.add_subcommand("data", "data preparation");
  data->require_subcommand(1);
  auto* cmd = data->add_subcommand("prepare", "tokenize text into llm.c-format shards");
  struct Args {
    std::vector<std::string> inputs;
    std::string tokenizer = "byte", tokenizer_path, out;
    double val_fraction = 0.05;
    int64_t seed = 0;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--input", a->inputs, "text files or folders")->required();
  cmd->add_option("--tokenizer", a->tokenizer, "byte | gpt2 | sentencepiece")
      ->check(CLI::IsMember({"byte", "gpt2", "sentencepiece"}));
  cmd->add_option("--tokenizer-path", a->tokenizer_path, "gpt2: folder with vocab.json, merges.txt; sentencepiece: the .model file");
  cmd->add_option("--out", a->out, "output folder")->required();
  cmd->add_option("--val-fraction", a->val_fraction, "share of documents for val")
      ->check(CLI::Range(0.0, 0.5));
  cmd->add_option("--seed", a->seed, "seed of the train/val split");
  cmd->callback([a, &action] {
    action = [a] {
      auto tok = make_tokenizer(a->tokenizer, a->tokenizer_path);
      auto s = prepare_shards(a->inputs, *tok, a->out, a->val_fraction, a->seed);
      fmt::print("{} files, {} documents -> {}: {} train tokens, {} val tokens\n", s.files,
                 s.documents, a->out, s.train_tokens, s.val_tokens);
      return 0;
    };
  });
}

void add_config(CLI::App& app, Action& action) {
  auto* config = app.add_subcommand("config", "inspect configurations");
  config->require_subcommand(1);
  auto* cmd = config->add_subcommand("show", "print the resolved config of a recipe or run");
  auto path = std::make_shared<std::string>();
  auto sets = std::make_shared<std::vector<std::string>>();
  cmd->add_option("recipe", *path, "recipe file or run folder")->required();
  cmd->add_option("--set", *sets, "override a config value");
  cmd->callback([=, &action] {
    action = [=] {
      fmt::print("{}", load_config_or_run(*path, *sets).to_yaml());
      return 0;
    };
  });
}

void add_list(CLI::App& app, Action& action) {
  auto* list = app.add_subcommand("list", "list registered components");
  list->require_subcommand(1);
  auto* cmd = list->add_subcommand("mixers", "sequence mixers with their options");
  cmd->callback([&action] {
    action = [] {
      const auto& reg = MixerRegistry::instance();
      for (const auto& name : reg.names()) {
        const MixerEntry* e = reg.find(name);
        fmt::print("{}: {}\n", name, e->description);
        for (const auto& line : e->option_docs) fmt::print("    {}\n", line);
      }
      return 0;
    };
  });
  auto* parts = list->add_subcommand("parts", "block layouts, norms, MLPs and positional embeddings (model.block)");
  parts->callback([&action] {
    action = [] {
      auto print = [](const char* key, const auto& reg) {
        fmt::print("{}:\n", key);
        for (const auto& name : reg.names()) fmt::print("    {}: {}\n", name, reg.find(name)->description);
      };
      print("model.block.layout", layout_registry());
      print("model.block.norm", norm_registry());
      print("model.block.mlp", mlp_registry());
      print("model.positions", positions_registry());
      return 0;
    };
  });
}

}  // namespace attnlab::cli
