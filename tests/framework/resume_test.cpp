// The trainer's use of the run folder: refusing before writing, resuming from the newest
// verified checkpoint with every state field checked against the config, one log curve across
// a resume, cleanup of dead runs' leftovers, the run lock, and data folders it must not touch.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "framework/checkpoint/checkpoint.h"
#include "framework/data/prepare.h"
#include "framework/data/sampler.h"
#include "framework/log/run_logs.h"
#include "framework/train/setup.h"
#include "framework/train/trainer.h"
#include "framework/util/atomic_file.h"
#include "tests/common/test_util.h"

namespace fs = std::filesystem;

namespace attnlab {
namespace {
using testing::config_error;

using testing::read_file;
using testing::TinyRun;

const TrainerOptions kFresh{false, true, true}, kResume{true, true, true};

// Trains `steps` steps then saves, as a run that is then killed (no further save).
void train_and_save(const TinyRun& r, int steps, std::vector<std::string> sets = {}) {
  Trainer t(r.config(sets), World{}, kFresh);
  for (int i = 0; i < steps; ++i) t.step();
  t.save();
}


TEST(Resume, ARefusedResumeWritesNothing) {
  TinyRun r;
  train_and_save(r, 2);
  const std::string before = read_file(r.run() + "/config.yaml");
  EXPECT_NE(config_error([&] { Trainer(r.config({"model.dim=48"}), World{}, kResume); }).find("config_hash"),
            std::string::npos);
  EXPECT_EQ(read_file(r.run() + "/config.yaml"), before) << "the refused resume rewrote config.yaml";
}

TEST(Resume, DeletedLatestResumesFromTheNewestStepNotFromScratch) {
  TinyRun r;
  train_and_save(r, 3);
  fs::remove(r.run() + "/checkpoints/latest");
  {
    Trainer t(r.config(), World{}, kResume);
    EXPECT_EQ(t.current_step(), 3);
  }
  // And a fresh (non-resume) start refuses the folder as long as any step-N remains.
  EXPECT_NE(config_error([&] { Trainer(r.config(), World{}, kFresh); }).find("already holds checkpoints"),
            std::string::npos);
}

TEST(Resume, UnverifiableNewerCheckpointIsSetAsideAndTheOlderOneUsed) {
  TinyRun r;
  {
    Trainer t(r.config({"checkpoint.keep=3"}), World{}, kFresh);
    t.step(), t.save(), t.step(), t.save();
  }
  std::ofstream(r.run() + "/checkpoints/step-2/optimizer.safetensors", std::ios::app) << "x";
  Trainer t(r.config({"checkpoint.keep=3"}), World{}, kResume);
  EXPECT_EQ(t.current_step(), 1);
  EXPECT_FALSE(fs::exists(r.run() + "/checkpoints/step-2"));
  EXPECT_TRUE(fs::exists(r.run() + "/checkpoints/step-2.corrupt.0"));
}

TEST(Resume, StateFieldsMustFitTheConfig) {
  TinyRun r;
  train_and_save(r, 4);
  // step 4 is past train.steps 3; a changed seed would change the data order.
  EXPECT_NE(config_error([&] { Trainer(r.config({"train.steps=3"}), World{}, kResume); })
                .find("step 4 is past train.steps 3"),
            std::string::npos);
  EXPECT_NE(config_error([&] { Trainer(r.config({"run.seed=8"}), World{}, kResume); }).find("seed 7 differs"),
            std::string::npos);
  // A cursor that this config could not have produced (sealed correctly, so only the
  // cross-check can catch it).
  Checkpoint ck = load_checkpoint(r.run());
  CheckpointState s = ck.state;
  s.data_cursor += 1;
  NamedTensors model(ck.model.tensors.begin(), ck.model.tensors.end());
  NamedTensors opt(ck.optimizer.tensors.begin(), ck.optimizer.tensors.end());
  s.step = 5, s.optimizer_steps = 5;
  save_checkpoint(r.run(), model, opt, s, 2);
  EXPECT_NE(config_error([&] { Trainer(r.config(), World{}, kResume); }).find("on 1 ranks is not step 5 x 4 samples per step"),
            std::string::npos);
}

TEST(Resume, HowOftenToLogEvalAndSaveAndHowManyThreadsMayChange) {
  TinyRun r;
  train_and_save(r, 2);
  Trainer t(r.config({"checkpoint.every=3", "log.every=1", "eval.every=2", "train.threads=0", "eval.batches=1"}),
            World{}, kResume);
  EXPECT_EQ(t.current_step(), 2);
}

TEST(Resume, AChangedTrainStepsIsAnnounced) {
  TinyRun r;
  train_and_save(r, 3);
  ::testing::internal::CaptureStdout();
  { Trainer t(r.config({"train.steps=20"}), World{}, {true, true, false}); }
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("train.steps 10 -> 20: the lr schedule now ends at step 20"), std::string::npos) << out;
}

std::vector<int64_t> metric_steps(const std::string& run) {
  std::vector<int64_t> steps;
  std::istringstream in(read_file(run + "/metrics.jsonl"));
  for (std::string line; std::getline(in, line);)
    if (line.find("train/loss") != std::string::npos)
      steps.push_back(nlohmann::json::parse(line)["step"].get<int64_t>());
  return steps;
}

TEST(Resume, LogsHoldEachStepOnce) {
  TinyRun r("");
  const std::vector<std::string> sets = {"log.every=1", "checkpoint.every=4", "train.steps=8"};
  {
    RunConfig c = r.config({"log.every=1", "checkpoint.every=4", "train.steps=6"});
    Trainer t(c, World{}, kFresh);
    t.train();  // logs 1..6, saves at 4 and 6
  }
  remove_tree(r.run() + "/checkpoints/step-6");
  std::ofstream(r.run() + "/checkpoints/latest", std::ios::trunc) << "step-4\n";
  EXPECT_EQ(metric_steps(r.run()), (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  Trainer t(r.config(sets), World{}, kResume);
  EXPECT_EQ(t.current_step(), 4);
  t.train();
  EXPECT_EQ(metric_steps(r.run()), (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  std::multiset<std::pair<std::string, int64_t>> seen;
  for (const auto& e : fs::directory_iterator(r.run()))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0)
      for (const auto& [tag, step] : read_event_scalars(e.path().string())) seen.emplace(tag, step);
  for (int64_t s = 1; s <= 8; ++s) EXPECT_EQ(seen.count({"train/loss", s}), 1u) << "step " << s;
}

TEST(RunDir, LeftoversOfDeadSavesAreRemovedOnStart) {
  TinyRun r;
  train_and_save(r, 1);
  fs::create_directories(r.run() + "/checkpoints/step-9.tmp");
  std::ofstream(r.run() + "/checkpoints/latest.tmp.12345") << "step-9\n";
  Trainer t(r.config(), World{}, kResume);
  EXPECT_FALSE(fs::exists(r.run() + "/checkpoints/step-9.tmp"));
  EXPECT_FALSE(fs::exists(r.run() + "/checkpoints/latest.tmp.12345"));
}

TEST(RunDir, ASecondTrainerOnTheSameRunIsRefused) {
  TinyRun r;
  Trainer first(r.config(), World{}, kFresh);
  try {
    Trainer second(r.config(), World{}, kFresh);
    ADD_FAILURE() << "two trainers share one run folder";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("another attnlab process"), std::string::npos) << e.what();
  }
}

TEST(RunDir, SavingAStepTwiceKeepsTheFirstCheckpoint) {
  // SIGINT right after a periodic checkpoint: train() saves the same step again.
  TinyRun r;
  Trainer t(r.config(), World{}, kFresh);
  t.step();
  t.save();
  struct stat a {}, b {};
  ::stat((r.run() + "/checkpoints/step-1/state.json").c_str(), &a);
  t.save();
  ::stat((r.run() + "/checkpoints/step-1/state.json").c_str(), &b);
  EXPECT_EQ(a.st_ino, b.st_ino);
}

TEST(Data, NeverReplacesAFolderItDidNotPrepare) {
  TinyRun r;
  const std::string mine = r.dir + "/my-notes";
  fs::create_directories(mine);
  std::ofstream(mine + "/thesis.tex") << "years of work";
  EXPECT_NE(config_error([&] { Trainer(r.config({"data.dir=" + mine}), World{}, kFresh); })
                .find("refusing to replace it"),
            std::string::npos);
  EXPECT_EQ(read_file(mine + "/thesis.tex"), "years of work");
  EXPECT_FALSE(fs::exists(r.run())) << "a refused data.dir must not create the run";
  // An empty folder, or one attnlab prepared, is fine.
  const std::string empty = r.dir + "/empty";
  fs::create_directories(empty);
  EXPECT_NO_THROW(Trainer(r.config({"data.dir=" + empty, "run.name=a"}), World{}, kFresh));
  EXPECT_TRUE(is_prepared_shard_folder(empty));
  for (const auto& e : fs::directory_iterator(empty))
    if (e.path().filename().string().rfind("train_", 0) == 0) fs::remove(e.path());
  EXPECT_NO_THROW(Trainer(r.config({"data.dir=" + empty, "run.name=b"}), World{}, kFresh));
  // Re-preparing one of our folders replaces it whole: no shard of a larger earlier run survives,
  // and a trailing '/' names the same folder (the temp folder is a sibling, not inside it).
  auto bpe = make_tokenizer("byte", "");
  const std::string out = r.dir + "/re";
  prepare_shards({r.dir + "/corpus.txt"}, *bpe, out, 0.1, 0, 5000);
  ASSERT_TRUE(fs::exists(out + "/train_000003.bin"));
  prepare_shards({r.dir + "/corpus.txt"}, *bpe, out + "/", 0.1, 0, 100000);
  EXPECT_FALSE(fs::exists(out + "/train_000003.bin"));
  EXPECT_TRUE(fs::exists(out + "/train_000000.bin"));
  for (const auto& e : fs::directory_iterator(r.dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  // `data prepare` refuses a foreign non-empty output folder too.
  auto tok = make_tokenizer("byte", "");
  EXPECT_THROW(prepare_shards({r.dir + "/corpus.txt"}, *tok, mine, 0.1), std::runtime_error);
  EXPECT_EQ(read_file(mine + "/thesis.tex"), "years of work");
}

TEST(Data, RunsStartingTogetherPrepareTheSharedDataFolderOnce) {
  // Sweep jobs and data-parallel ranks share data.dir. Unserialised, a second preparer removed
  // the first one's folder to rename its own over it while the first was opening it.
  TinyRun r;
  for (int round = 0; round < 6; ++round) {
    const std::string dir = fmt::format("{}/shared-{}", r.dir, round);
    const RunConfig cfg = r.config({"data.dir=" + dir});
    std::vector<std::string> errors(4);
    std::vector<std::thread> runs;
    for (size_t i = 0; i < errors.size(); ++i)
      runs.emplace_back([&, i] {
        try {
          EXPECT_GT(open_split(cfg, "train")->size(), 0);
          EXPECT_GT(open_split(cfg, "val")->size(), 0);
        } catch (const std::exception& e) {
          errors[i] = e.what();
        }
      });
    for (auto& t : runs) t.join();
    for (const auto& e : errors) EXPECT_EQ(e, "") << "round " << round;
  }
  for (const auto& e : fs::directory_iterator(r.dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

TEST(Data, AValidationSplitShorterThanOneWindowFailsAtStart) {
  TinyRun r;
  const std::string shards = r.dir + "/shards";
  fs::create_directories(shards);
  write_shard(shards + "/train_000000.bin", std::vector<int32_t>(2000, 7));
  write_shard(shards + "/val_000000.bin", std::vector<int32_t>(20, 7));  // < seq_len + 1 = 33
  try {
    Trainer t(r.config({"data.dir=" + shards, "data.prepare_from=''"}), World{}, kFresh);
    ADD_FAILURE() << "started with an unusable validation split";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(shards + "/val_*.bin: 20 tokens are fewer than one window"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(r.run()));
}

TEST(Sampler, ANegativeCursorIsRefusedNotReadOutOfBounds) {
  const std::string d = testing::temp_dir("samp");
  std::vector<int32_t> toks(200, 5);
  write_shard(d + "/train_000000.bin", toks);
  BatchSampler s(std::make_shared<const TokenStream>(d, "train"), 10, 1);
  s.cursor = -3;
  try {
    s.next(2);
    ADD_FAILURE() << "a negative cursor was read";
  } catch (const std::out_of_range& e) {
    // The sampler's own check, not an accident further down (an out-of-bounds permutation read
    // can also end in the token stream's range error).
    EXPECT_NE(std::string(e.what()).find("negative sample index -3"), std::string::npos) << e.what();
  }
}

TEST(DiskFull, IsAClearErrorAndLatestStaysIntact) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  const std::string mnt = testing::temp_dir("full");
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=2m") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno) << ")";
  struct Unmount {
    std::string p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};
  TinyRun r;
  // dim 32 is ~120 KB of weights: fits once, not 40 times over.
  Trainer t(r.config({"run.dir=" + mnt, "checkpoint.keep=100"}), World{}, kFresh);
  std::string error;
  for (int i = 0; i < 40 && error.empty(); ++i) {
    t.step();
    try {
      t.save();
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  ASSERT_FALSE(error.empty()) << "2 MB never filled up";
  EXPECT_NE(error.find("disk full"), std::string::npos) << error;
  const std::string run = mnt + "/tiny";
  EXPECT_NO_THROW(read_checkpoint(*latest_checkpoint(run)));
}

}  // namespace
}  // namespace attnlab
