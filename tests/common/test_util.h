// Shared test helpers: tolerance-by-rule comparison, temp folders, tiny corpora and configs.
#pragma once
#include <ATen/core/Tensor.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "framework/config/run_config.h"

namespace attnlab {
class Mixer;
}

namespace attnlab::testing {

/// Runs `m` token by token over x [B, T, D] from a fresh init_state; returns y [B, T, D] and
/// expects the state to have counted T positions.
at::Tensor decode_token_by_token(Mixer& m, const at::Tensor& x);
/// Copies into `to` every parameter it shares by name with `from` (e.g. the projections of two
/// mixers that should agree).
void copy_parameters(Mixer& from, Mixer& to);

/// Relative RMS error ||got - ref|| / ||ref|| (fla's metric); logs abs and rel error per tensor.
double rel_rms(const at::Tensor& ref, const at::Tensor& got);
void expect_close(const std::string& name, const at::Tensor& ref, const at::Tensor& got,
                  double tol);

/// A fresh empty folder under the system temp dir, removed at process exit is not guaranteed.
std::string temp_dir(const std::string& tag);
/// Writes a small deterministic English-like corpus (documents separated by "%" lines).
std::string write_corpus(const std::string& dir, int documents = 400);
/// A complete tiny recipe (softmax, dim 32, 2 layers, seq 32) training on `corpus_dir`.
std::string tiny_recipe(const std::string& dir, const std::string& corpus, const std::string& extra = "");

/// A fresh folder holding a corpus and tiny_recipe(); the run goes to <dir>/runs/tiny.
struct TinyRun {
  std::string dir, recipe;
  explicit TinyRun(const std::string& extra = "");
  RunConfig config(std::vector<std::string> sets = {}) const { return load_run_config(recipe, sets); }
  std::string run() const { return dir + "/runs/tiny"; }
};

/// The message of the ConfigError `f` throws, or "no ConfigError".
std::string config_error(const std::function<void()>& f);

/// The whole file as bytes ("" when it cannot be read).
std::string read_file(const std::string& path);

}  // namespace attnlab::testing
