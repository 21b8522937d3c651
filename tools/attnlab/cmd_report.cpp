// attnlab report RUN_OR_SWEEP... [--bench FILE]... [--out report.html]: a self-contained HTML report of runs and
// sweeps, and a plain-text summary on stdout (tools/report; docs/ablations.md, "Reports").
#include <fmt/format.h>

#include "framework/config/config_error.h"
#include "framework/log/console.h"
#include "framework/util/atomic_file.h"
#include "tools/attnlab/commands.h"
#include "tools/report/report_html.h"

namespace attnlab::cli {

void add_report(CLI::App& app, Action& action) {
  auto* cmd = app.add_subcommand("report", "an HTML report (curves, tables, recall figures) of runs and sweeps");
  auto paths = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  auto benches = std::make_shared<std::vector<std::string>>();
  cmd->add_option("paths", *paths, "run folders and sweep folders");
  cmd->add_option("--bench", *benches, "files of attnlab bench mixer --jsonl (repeatable): tokens/s and memory vs T");
  cmd->add_option("--out", *out, "write the HTML report here (one file, no external resources)");
  cmd->callback([=, &action] {
    action = [=] {
      if (paths->empty() && benches->empty()) throw ConfigError({"report: give run or sweep folders, or --bench files"});
      const report::ReportInput in = report::load_report_input(*paths, *benches);
      if (!out->empty()) write_file_atomic(*out, report::render_html(in));
      if (!console_write(stdout, report::text_summary(in))) return 1;
      if (!out->empty()) console_write(stdout, fmt::format("report: wrote {}\n", *out));
      return 0;
    };
  });
}

}  // namespace attnlab::cli
