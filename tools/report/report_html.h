// `attnlab report`: one self-contained HTML page (inline SVG charts, no scripts, no network)
// and a plain-text summary of the same runs (docs/ablations.md, "Reports").
#pragma once
#include <string>

#include "tools/report/report_data.h"

namespace attnlab::report {

std::string render_html(const ReportInput& in);
std::string text_summary(const ReportInput& in);

/// The recall figure's layout for a sweep: accuracy against `x` (model.dim when swept), one
/// series per value of `series` (the mixer axis when swept), one panel per value of the
/// `panels` axes; seeds are averaged. Empty x when the sweep has no accuracy or numeric axis.
struct RecallLayout {
  std::string x;
  std::vector<std::string> series, panels;
};
RecallLayout recall_layout(const SweepData& s);

}  // namespace attnlab::report
