// attnlab convert import | export | verify (docs/conversion.md).
#include <fmt/format.h>

#include "tools/attnlab/commands.h"
#include "tools/convert/hf_export.h"
#include "tools/convert/hf_import.h"
#include "tools/convert/verify.h"

namespace attnlab::cli {

void add_convert(CLI::App& app, Action& action) {
  auto* convert = app.add_subcommand("convert", "import pretrained checkpoints, check their fidelity");
  convert->require_subcommand(1);

  auto* imp = convert->add_subcommand("import", "a Hugging Face Llama / GPT-2 folder -> an attnlab run folder");
  auto o = std::make_shared<convert::ImportOptions>();
  imp->add_option("--hf", o->hf_dir, "Hugging Face model folder (config.json, *.safetensors, tokenizer files)")
      ->required()
      ->check(CLI::ExistingDirectory);
  imp->add_option("--out", o->out_dir, "run folder to create (must not exist)")->required();
  imp->add_option("--prepare-from", o->prepare_from, "text file or folder the run trains on (data.prepare_from)");
  imp->add_option("--seq-len", o->seq_len, "data.seq_len (default: min(1024, the model's context))")
      ->check(CLI::PositiveNumber);
  imp->add_option("--tokenizer", o->tokenizer, "auto: the folder's own; byte: attnlab's byte tokenizer")
      ->check(CLI::IsMember({"auto", "byte"}));
  imp->add_option("--set", o->overrides, "override a value of the generated config: a.b.c=value (repeatable)");
  imp->callback([o, &action] {
    action = [o] {
      const convert::ImportResult r = convert::import_hf(*o);
      fmt::print("imported {} ({}, {:.2f}M parameters, tokenizer {}) -> {}\n", o->hf_dir, r.family,
                 static_cast<double>(r.parameters) / 1e6, r.tokenizer, r.run_dir);
      return 0;
    };
  });

  auto* exp = convert->add_subcommand("export", "a softmax run with Llama / GPT-2 blocks -> a Hugging Face folder");
  auto ex_run = std::make_shared<std::string>(), ex_out = std::make_shared<std::string>(),
       ex_ckpt = std::make_shared<std::string>();
  exp->add_option("run", *ex_run, "run folder")->required()->check(CLI::ExistingDirectory);
  exp->add_option("--hf", *ex_out, "Hugging Face folder to create (must not exist)")->required();
  exp->add_option("--checkpoint", *ex_ckpt, "a specific checkpoint folder (default: the newest verified)");
  exp->callback([=, &action] {
    action = [=] {
      const convert::ExportResult r = convert::export_hf(*ex_run, *ex_ckpt, *ex_out);
      fmt::print("exported {} ({}, {} tensors) -> {}\n", *ex_run, r.family, r.tensors, *ex_out);
      return 0;
    };
  });

  auto* ver = convert->add_subcommand("verify", "compare a run's logits and greedy decoding with a reference file");
  auto run = std::make_shared<std::string>(), ref = std::make_shared<std::string>();
  auto tol = std::make_shared<double>(1e-5);
  ver->add_option("run", *run, "run folder")->required()->check(CLI::ExistingDirectory);
  ver->add_option("--reference", *ref, "safetensors from tools/convert/hf_reference.py")->required()->check(CLI::ExistingFile);
  ver->add_option("--tolerance", *tol, "largest relative RMS error of the logits")->check(CLI::Range(0.0, 1.0));
  ver->callback([=, &action] {
    action = [=] {
      const convert::VerifyResult r = convert::verify_against_reference(*run, *ref, *tol);
      fmt::print("verify {}: logits rel RMS {:.2e} (tolerance {:.0e}), max |diff| {:.2e} | greedy {}/{} tokens "
                 "identical | {}\n",
                 *run, r.logits_rel_rms, *tol, r.logits_max_abs, r.greedy_matched, r.greedy_total,
                 r.passed ? "PASS" : "FAIL");
      return r.passed ? 0 : 1;
    };
  });
}

}  // namespace attnlab::cli
