// Checkpoints that cannot lie: a kill at every point of the save sequence leaves a complete,
// verifiable `latest`; flipped bits, wrong dtypes, extra tensors, bad state fields and
// non-finite weights are refused with the file and field named; re-saving a complete step
// never removes it.
#include <ATen/ops/arange.h>
#include <ATen/ops/full.h>
#include <ATen/ops/randn.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>

#include "framework/checkpoint/checkpoint.h"
#include "framework/checkpoint/tensor_copy.h"
#include "framework/util/atomic_file.h"
#include "framework/util/fault.h"
#include "framework/util/hash.h"
#include "tests/common/test_util.h"

namespace fs = std::filesystem;

namespace attnlab {
namespace {

using testing::read_file;

void spit(const std::string& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << bytes;
}

// Runs `body` in a forked child with ATTNLAB_FAULT_AT=point; returns the child's exit code.
// The body must not start torch thread pools (a forked child inherits none of their threads).
int run_until_fault(const std::string& point, const std::function<void()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("ATTNLAB_FAULT_AT", point.c_str(), 1);
    try {
      body();
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct Weights {
  NamedTensors model, optimizer;
  explicit Weights(double fill) {
    model = {{"model.w", at::full({4, 3}, fill)}, {"model.b", at::full({3}, -fill)}};
    optimizer = {{"exp_avg.model.w", at::full({4, 3}, 0.5 * fill)}};
  }
};

CheckpointState state_at(int64_t step) {
  CheckpointState s;
  s.step = s.optimizer_steps = step;
  s.data_cursor = 4 * step;
  s.train_steps = 100;
  s.seed = 7;
  s.config_hash = "0123456789abcdef";
  s.attnlab_version = "test";
  return s;
}

std::string save(const std::string& run, int64_t step, int64_t keep = 2) {
  Weights w(static_cast<double>(step));
  return save_checkpoint(run, w.model, w.optimizer, state_at(step), keep);
}

// The invariant a kill must never break: `latest` names a folder that verifies.
void expect_complete_latest(const std::string& run, const std::string& context) {
  auto latest = latest_checkpoint(run);
  ASSERT_TRUE(latest) << context;
  EXPECT_NO_THROW(read_checkpoint(*latest)) << context << ": latest = " << *latest;
  auto newest = newest_checkpoint(run);
  ASSERT_TRUE(newest.checkpoint) << context;
}

TEST(Hash, Xxh64MatchesTheReferenceXxhsum) {
  // Vectors from Debian's xxhsum (xxhash package): `printf '%s' S | xxhsum -H1`.
  EXPECT_EQ(hex64(xxh64("")), "ef46db3751d8e999");
  EXPECT_EQ(hex64(xxh64("a")), "d24ec4f1a98c6e5b");
  EXPECT_EQ(hex64(xxh64("abc")), "44bc2cf5ad770999");
  EXPECT_EQ(hex64(xxh64("0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")),
            "4d5c1ea57e188ac2");
  std::string long_text;
  for (int i = 0; i < 1000; ++i) long_text.push_back(static_cast<char>(32 + i % 90));
  EXPECT_EQ(hex64(xxh64(long_text)), "3620535e9a6ff2db");
}

TEST(Checkpoint, AKillAtEverySavePointLeavesACompleteLatest) {
  // New step 3 over steps 1 and 2 (keep 2, so step 1 is pruned): every point of the sequence.
  const std::vector<std::string> fresh = {"save:begin", "save:model", "save:optimizer", "save:state",
                                          "save:renamed", "save:latest", "save:pruning", "save:pruned"};
  int points = 0;
  for (const auto& point : fresh) {
    const std::string run = testing::temp_dir("kill");
    save(run, 1), save(run, 2);
    Weights w(3.0);
    const int rc = run_until_fault(point, [&] { save_checkpoint(run, w.model, w.optimizer, state_at(3), 2); });
    ASSERT_EQ(rc, kFaultExitCode) << point << " was never reached";
    expect_complete_latest(run, "killed at " + point);
    // The next start cleans up and the same save then completes.
    remove_checkpoint_leftovers(run);
    for (const auto& e : fs::directory_iterator(run + "/checkpoints"))
      EXPECT_TRUE(std::regex_match(e.path().filename().string(), std::regex("step-[0-9]+|latest")))
          << point << ": leftover " << e.path();
    save(run, 3);
    EXPECT_EQ(newest_checkpoint(run).checkpoint->state.step, 3) << point;
    ++points;
  }
  // Re-saving a step that is complete (SIGINT right after a periodic save), and replacing a
  // torn step folder that a kill -9 left behind.
  {
    const std::string run = testing::temp_dir("kill");
    save(run, 1), save(run, 2);
    ASSERT_EQ(run_until_fault("save:skip", [&] { save(run, 2); }), kFaultExitCode);
    expect_complete_latest(run, "killed while re-saving a complete step");
    ++points;
  }
  {
    const std::string run = testing::temp_dir("kill");
    save(run, 1);
    fs::create_directories(run + "/checkpoints/step-2");
    spit(run + "/checkpoints/step-2/state.json", "{\"step\": 2");  // torn
    ASSERT_EQ(run_until_fault("save:replace", [&] { save(run, 2); }), kFaultExitCode);
    expect_complete_latest(run, "killed while replacing a torn step");
    remove_checkpoint_leftovers(run);
    save(run, 2);
    EXPECT_EQ(newest_checkpoint(run).checkpoint->state.step, 2);
    ++points;
  }
  std::printf("kill points tested: %d\n", points);
}

TEST(Checkpoint, ResavingACompleteStepKeepsTheFolder) {
  const std::string run = testing::temp_dir("resave");
  const std::string dir = save(run, 5);
  struct stat before {}, after {};
  ::stat((dir + "/model.safetensors").c_str(), &before);
  save(run, 5);
  ::stat((dir + "/model.safetensors").c_str(), &after);
  EXPECT_EQ(before.st_ino, after.st_ino) << "the complete step-5 was rewritten";
}

// Flips one bit of `file` at byte `offset` (from the end when negative).
void flip_bit(const std::string& file, int64_t offset) {
  std::string b = read_file(file);
  const size_t at = offset >= 0 ? static_cast<size_t>(offset) : b.size() - static_cast<size_t>(-offset);
  b[at] = static_cast<char>(b[at] ^ 0x10);
  spit(file, b);
}

TEST(Checkpoint, AFlippedBitInAnyFileIsRefusedNamingTheFile) {
  for (const std::string file : {"model.safetensors", "optimizer.safetensors", "state.json"}) {
    const std::string run = testing::temp_dir("flip");
    const std::string dir = save(run, 1);
    flip_bit(dir + "/" + file, file == "state.json" ? 20 : -3);  // a data byte / a state field
    try {
      read_checkpoint(dir);
      ADD_FAILURE() << "a flipped bit in " << file << " was accepted";
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find(dir + "/" + file), std::string::npos) << e.what();
    }
  }
}

TEST(Checkpoint, ExactTensorSetAndDtypesOnLoad) {
  at::Tensor w = at::zeros({4, 3});
  const NamedTensors targets = {{"model.w", w}};
  EXPECT_NO_THROW(copy_tensors_exact(targets, {{"model.w", at::ones({4, 3})}}, "f"));
  EXPECT_EQ(w.sum().item<double>(), 12.0);
  auto message = [&](const std::map<std::string, at::Tensor>& src) {
    try {
      copy_tensors_exact(targets, src, "ck/model.safetensors");
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message({{"model.w", at::arange(12, at::kLong).view({4, 3})}}).find("dtype Long, expected Float"),
            std::string::npos);
  EXPECT_NE(message({{"model.w", at::ones({4, 3})}, {"model.extra", at::ones({1})}})
                .find("unexpected tensor model.extra"),
            std::string::npos);
  EXPECT_NE(message({{"model.w", at::ones({3, 4})}}).find("shape [3, 4], expected [4, 3]"), std::string::npos);
  EXPECT_NE(message({}).find("ck/model.safetensors: missing tensor model.w"), std::string::npos);
}

TEST(Checkpoint, NonFiniteWeightsAreRefused) {
  const std::string run = testing::temp_dir("nan");
  Weights w(1.0);
  w.model[1].second = at::full({3}, std::numeric_limits<double>::quiet_NaN()).to(at::kFloat);
  const std::string dir = save_checkpoint(run, w.model, w.optimizer, state_at(1), 2);
  try {
    read_checkpoint(dir);
    ADD_FAILURE() << "NaN weights were accepted";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("model.b holds non-finite values"), std::string::npos) << e.what();
  }
}

std::string decode_error(const std::string& text) {
  try {
    decode_state(text, "run/state.json");
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(CheckpointState, EveryFieldIsValidatedAndNamed) {
  CheckpointState good = state_at(10);
  good.files["model.safetensors"] = {10, "0000000000000001"};
  EXPECT_EQ(decode_state(encode_state(good), "s").step, 10);
  // Each bad value is sealed with a correct checksum, so the range checks themselves must catch it.
  auto with = [&](auto edit) {
    CheckpointState s = good;
    edit(s);
    return decode_error(encode_state(s));
  };
  EXPECT_NE(with([](auto& s) { s.step = -5; }).find("run/state.json: step: -5 is outside"), std::string::npos);
  EXPECT_NE(with([](auto& s) { s.optimizer_steps = -3; }).find("optimizer_steps"), std::string::npos);
  EXPECT_NE(with([](auto& s) { s.skipped_steps = 4; }).find("applied + 4 skipped != step 10"), std::string::npos);
  EXPECT_NE(with([](auto& s) { s.data_cursor = -1; }).find("data_cursor: -1 is outside"), std::string::npos);
  EXPECT_NE(with([](auto& s) { s.train_steps = 5; }).find("step: 10 is past train_steps 5"), std::string::npos);
  EXPECT_NE(with([](auto& s) { s.files.clear(); }).find("files"), std::string::npos);
  EXPECT_NE(with([](auto& s) { s.files["../x"] = {1, "0000000000000001"}; }).find("not a plain file name"),
            std::string::npos);
  // Hand edits (no valid seal), numbers that do not fit, wrong shapes of the document.
  std::string text = encode_state(good);
  const std::string edited = std::regex_replace(text, std::regex("\"step\": 10"), "\"step\": 11");
  EXPECT_NE(decode_error(edited).find("checksum mismatch"), std::string::npos);
  EXPECT_NE(decode_error("[1, 2]").find("run/state.json: expected a JSON object, got array"), std::string::npos);
  EXPECT_NE(decode_error("{\"step\": 1").find("run/state.json: not valid JSON"), std::string::npos);
  EXPECT_NE(decode_error("{}").find("run/state.json: checksum: missing"), std::string::npos);
  // Deep nesting is refused while parsing (copying or dumping it would overflow the stack).
  EXPECT_NE(decode_error("{\"a\": " + std::string(500000, '[') + std::string(500000, ']') + "}")
                .find("nested deeper"),
            std::string::npos);
}

TEST(CheckpointState, HugeAndFractionalNumbersAreRefused) {
  // A correctly sealed document whose step is 1e30: built by hand with the same seal rule.
  for (const std::string bad : {"1e30", "5.0", "18446744073709551615"}) {
    nlohmann::json body = nlohmann::json::parse(encode_state(state_at(1)));
    body.erase("checksum");
    body["step"] = nlohmann::json::parse(bad);
    body["checksum"] = hex64(xxh64(body.dump()));
    EXPECT_NE(decode_error(body.dump()).find("step: expected an integer"), std::string::npos) << bad;
  }
}

TEST(Checkpoint, NewestVerifiedCheckpointWinsAndNoneVerifyingIsAnError) {
  const std::string run = testing::temp_dir("newest");
  save(run, 1, 5), save(run, 2, 5), save(run, 3, 5);
  fs::remove(run + "/checkpoints/latest");
  EXPECT_EQ(newest_checkpoint(run).checkpoint->state.step, 3) << "a missing latest must not hide step-3";
  flip_bit(run + "/checkpoints/step-3/model.safetensors", -1);
  auto found = newest_checkpoint(run);
  EXPECT_EQ(found.checkpoint->state.step, 2);
  ASSERT_EQ(found.rejected.size(), 1u);
  EXPECT_NE(found.rejected[0].find("step-3/model.safetensors"), std::string::npos);
  // A newer attnlab's format is not "corrupt": no silent fallback past it.
  {
    nlohmann::json body = nlohmann::json::parse(read_file(run + "/checkpoints/step-2/state.json"));
    const std::string saved = body.dump(2);
    body.erase("checksum");
    body["format"] = 2;
    body["checksum"] = hex64(xxh64(body.dump()));
    spit(run + "/checkpoints/step-2/state.json", body.dump(2));
    EXPECT_THROW(newest_checkpoint(run), CheckpointFormatError);
    spit(run + "/checkpoints/step-2/state.json", saved);
  }
  flip_bit(run + "/checkpoints/step-2/optimizer.safetensors", -1);
  flip_bit(run + "/checkpoints/step-1/state.json", 30);
  EXPECT_THROW(newest_checkpoint(run), CheckpointError);
  EXPECT_THROW(load_checkpoint(run), CheckpointError);
}

}  // namespace
}  // namespace attnlab
