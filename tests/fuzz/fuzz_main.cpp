// attnlab_fuzz: runs the reader fuzz targets for a bounded number of seeded inputs.
//   attnlab_fuzz --target safetensors|shards|state|yaml|all --inputs N [--seed S]
// Built with AddressSanitizer and UndefinedBehaviorSanitizer (tests/fuzz/CMakeLists.txt), so
// an out-of-bounds read or an overflow aborts with a report. An exception other than the
// reader's own error type, or a sanitizer report, fails the run; the offending input is saved
// as fuzz-failure-<target>-<n>.bin in the working directory. Prints, per target, the inputs
// run, how many were accepted and rejected, and the slowest input.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "framework/util/atomic_file.h"
#include "tests/fuzz/targets.h"

// LeakSanitizer would report LibTorch's intentional process-lifetime allocations.
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }

namespace {

using attnlab::fuzz::Mutator;
using attnlab::fuzz::Target;

int run_target(const Target& t, int64_t inputs, uint64_t seed) {
  Mutator m(seed * 0x9E3779B97F4A7C15ull + std::hash<std::string>{}(t.name), t.tokens);
  int64_t accepted = 0, rejected = 0;
  double slowest = 0;
  int64_t slowest_input = -1;
  for (int64_t i = 0; i < inputs; ++i) {
    const std::string& a = t.seeds[m.below(t.seeds.size())];
    const std::string& b = t.seeds[m.below(t.seeds.size())];
    const std::string input = t.make_input(a, b, m);
    const auto start = std::chrono::steady_clock::now();
    std::string escaped;
    try {
      t.run(input, m) ? ++accepted : ++rejected;
    } catch (const std::exception& e) {
      if (t.own_error(e)) ++rejected;
      else escaped = std::string(typeid(e).name()) + ": " + e.what();
    } catch (...) {
      escaped = "a non-std exception";
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (s > slowest) slowest = s, slowest_input = i;
    if (!escaped.empty()) {
      const std::string file = "fuzz-failure-" + t.name + "-" + std::to_string(i) + ".bin";
      std::ofstream(file, std::ios::binary) << input;
      std::printf("fuzz %s: input %lld escaped as %s (saved to %s)\n", t.name.c_str(),
                  static_cast<long long>(i), escaped.substr(0, 500).c_str(), file.c_str());
      return 1;
    }
  }
  std::printf("fuzz %s: %lld inputs (seed %llu), %lld accepted, %lld rejected by the reader, 0 crashes; "
              "slowest input %lld took %.1f ms\n",
              t.name.c_str(), static_cast<long long>(inputs), static_cast<unsigned long long>(seed),
              static_cast<long long>(accepted), static_cast<long long>(rejected),
              static_cast<long long>(slowest_input), 1e3 * slowest);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string which = "all";
  int64_t inputs = 20000;
  uint64_t seed = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--target") which = argv[i + 1];
    else if (flag == "--inputs") inputs = std::atoll(argv[i + 1]);
    else if (flag == "--seed") seed = std::strtoull(argv[i + 1], nullptr, 10);
    else return std::fprintf(stderr, "usage: attnlab_fuzz --target NAME|all --inputs N [--seed S]\n"), 2;
  }
  const std::string scratch = (std::filesystem::temp_directory_path() /
                               ("attnlab-fuzz-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(scratch);
  int rc = 0, ran = 0;
  for (const Target& t : {attnlab::fuzz::safetensors_target(), attnlab::fuzz::shards_target(),
                          attnlab::fuzz::megatron_target(),
                          attnlab::fuzz::state_target(), attnlab::fuzz::yaml_target(scratch)}) {
    if (which != "all" && which != t.name) continue;
    ++ran;
    rc |= run_target(t, inputs, seed);
  }
  attnlab::remove_tree(scratch);
  if (!ran) return std::fprintf(stderr, "unknown target %s\n", which.c_str()), 2;
  return rc;
}
