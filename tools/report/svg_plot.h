// Charts as inline SVG for `attnlab report` (docs/ablations.md, "Reports"): a line chart with
// any number of series and a heat map. No scripts, no external resources; every chart is one
// <svg class="chart"> element whose marks carry classes (series, cell) a test can count.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace attnlab::report {

struct Series {
  std::string name;
  std::vector<double> x, y;
};

struct LineChart {
  std::string title, x_label, y_label;
  bool log_x = false;
  std::optional<double> y_min, y_max;  ///< fixed range (e.g. accuracy 0..1); else the data's
  std::vector<Series> series;
  bool markers = false;  ///< dots at the points (few points, e.g. accuracy vs width)
};

struct HeatMap {
  std::string title, x_label, y_label;
  std::vector<std::string> x_labels, y_labels;
  std::vector<std::vector<double>> values;  ///< [row = y][column = x], NaN = missing
  double lo = 0, hi = 1;                    ///< colour range
};

std::string render(const LineChart& chart);
std::string render(const HeatMap& map);
/// Text safe inside HTML/SVG element content and attribute values.
std::string escape_xml(const std::string& text);
/// The palette colour of series i (stable: the same series keeps its colour across charts).
std::string series_colour(size_t i);

}  // namespace attnlab::report
