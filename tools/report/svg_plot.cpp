#include "tools/report/svg_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace attnlab::report {
namespace {

constexpr double kWidth = 640, kHeight = 360;
constexpr double kLeft = 64, kRight = 150, kTop = 34, kBottom = 48;  // room for axes and legend

// Tick positions: 1, 2 or 5 times a power of ten, about `count` of them across [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int count) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / count, mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
  std::vector<double> out;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push_back(std::abs(t) < step * 1e-9 ? 0 : t);
  return out;
}

std::string tick_label(double v) {
  if (v != 0 && (std::abs(v) >= 1e5 || std::abs(v) < 1e-3)) return fmt::format("{:.0e}", v);
  return fmt::format("{:.4g}", v);
}

struct Axis {
  double lo, hi, px0, px1;
  bool log;
  double map(double v) const {
    const double a = log ? std::log10(v) : v, l = log ? std::log10(lo) : lo, h = log ? std::log10(hi) : hi;
    return h > l ? px0 + (a - l) / (h - l) * (px1 - px0) : (px0 + px1) / 2;
  }
};

std::string frame(const std::string& title, const std::string& body) {
  return fmt::format(R"(<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{0}" height="{1}" viewBox="0 0 {0} {1}" role="img"><title>{2}</title><rect width="{0}" height="{1}" fill="#fff"/><text x="{3}" y="20" class="chart-title" font-size="14" font-weight="bold">{2}</text>{4}</svg>)",
                     kWidth, kHeight, escape_xml(title), kLeft, body);
}

}  // namespace

std::string escape_xml(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string series_colour(size_t i) {
  // Colour-blind friendly (Okabe-Ito), then darker variants.
  static const char* palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
                                  "#000000", "#F0E442", "#882255", "#117733", "#332288", "#999933"};
  return palette[i % (sizeof(palette) / sizeof(palette[0]))];
}

std::string render(const LineChart& c) {
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const Series& s : c.series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i]) || (c.log_x && s.x[i] <= 0)) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]), y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
    }
  if (!std::isfinite(x0)) return frame(c.title, R"(<text x="64" y="60">no data</text>)");
  if (c.y_min) y0 = *c.y_min;
  if (c.y_max) y1 = *c.y_max;
  if (y1 <= y0) y0 -= 0.5, y1 += 0.5;
  if (x1 <= x0) x0 -= 0.5, x1 += 0.5;
  const Axis X{x0, x1, kLeft, kWidth - kRight, c.log_x}, Y{y0, y1, kHeight - kBottom, kTop, false};
  std::string body;
  // Axes, ticks and grid.
  body += fmt::format(R"(<g class="axes" font-size="11" fill="#333"><line x1="{0}" y1="{2}" x2="{1}" y2="{2}" stroke="#333"/><line x1="{0}" y1="{2}" x2="{0}" y2="{3}" stroke="#333"/>)",
                      kLeft, kWidth - kRight, kHeight - kBottom, kTop);
  std::vector<double> xt;
  if (c.log_x) {
    // Few distinct x values (widths 32, 64, 128): tick exactly there; else 1-2-5 per decade.
    for (const Series& s : c.series) xt.insert(xt.end(), s.x.begin(), s.x.end());
    std::sort(xt.begin(), xt.end());
    xt.erase(std::unique(xt.begin(), xt.end()), xt.end());
    if (xt.size() > 8) {
      xt.clear();
      for (double p = std::floor(std::log10(x0)); p <= std::ceil(std::log10(x1)); ++p)
        for (double m : {1.0, 2.0, 5.0})
          if (const double v = m * std::pow(10.0, p); v >= x0 * (1 - 1e-9) && v <= x1 * (1 + 1e-9)) xt.push_back(v);
    }
  } else {
    xt = nice_ticks(x0, x1, 6);
  }
  for (double t : xt)
    body += fmt::format(R"(<line x1="{0:.1f}" y1="{1}" x2="{0:.1f}" y2="{2}" stroke="#eee"/><text x="{0:.1f}" y="{3}" text-anchor="middle">{4}</text>)",
                        X.map(t), kHeight - kBottom, kTop, kHeight - kBottom + 15, tick_label(t));
  for (double t : nice_ticks(y0, y1, 5))
    body += fmt::format(R"(<line x1="{0}" y1="{2:.1f}" x2="{1}" y2="{2:.1f}" stroke="#eee"/><text x="{3}" y="{4:.1f}" text-anchor="end">{5}</text>)",
                        kLeft, kWidth - kRight, Y.map(t), kLeft - 6, Y.map(t) + 4, tick_label(t));
  body += fmt::format(R"svg(<text x="{0:.1f}" y="{1}" text-anchor="middle">{2}</text><text x="14" y="{3:.1f}" text-anchor="middle" transform="rotate(-90 14 {3:.1f})">{4}</text></g>)svg",
                      (kLeft + kWidth - kRight) / 2, kHeight - 10, escape_xml(c.x_label), (kTop + kHeight - kBottom) / 2,
                      escape_xml(c.y_label));
  // One polyline per series (points outside a fixed y range are clamped to it), then the legend.
  for (size_t i = 0; i < c.series.size(); ++i) {
    const Series& s = c.series[i];
    std::string points, dots;
    for (size_t k = 0; k < s.x.size() && k < s.y.size(); ++k) {
      if (!std::isfinite(s.y[k]) || (c.log_x && s.x[k] <= 0)) continue;
      const double px = X.map(s.x[k]), py = Y.map(std::clamp(s.y[k], y0, y1));
      points += fmt::format("{:.1f},{:.1f} ", px, py);
      if (c.markers) dots += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3"/>)", px, py);
    }
    body += fmt::format(R"(<g class="series" data-name="{0}" stroke="{1}" fill="{1}"><polyline fill="none" stroke-width="1.8" points="{2}"/>{3}</g>)",
                        escape_xml(s.name), series_colour(i), points, dots);
    // The legend holds 16 entries; more lines than that are told apart by the other charts.
    const double ly = kTop + 14 * static_cast<double>(i);
    if (i == 16) body += fmt::format(R"(<text x="{}" y="{:.1f}" font-size="11">+ {} more</text>)", kWidth - kRight + 10,
                                     ly + 9, c.series.size() - 16);
    if (i >= 16) continue;
    body += fmt::format(R"(<g class="legend" font-size="11"><rect x="{0}" y="{1:.1f}" width="10" height="10" fill="{2}"/><text x="{3}" y="{4:.1f}">{5}</text></g>)",
                        kWidth - kRight + 10, ly, series_colour(i), kWidth - kRight + 24, ly + 9, escape_xml(s.name));
  }
  return frame(c.title, body);
}

std::string render(const HeatMap& m) {
  const size_t rows = m.y_labels.size(), cols = m.x_labels.size();
  if (rows == 0 || cols == 0) return frame(m.title, R"(<text x="64" y="60">no data</text>)");
  const double w = (kWidth - kLeft - kRight) / static_cast<double>(cols);
  const double h = (kHeight - kTop - kBottom) / static_cast<double>(rows);
  std::string body = R"(<g font-size="11" fill="#333">)";
  for (size_t r = 0; r < rows; ++r)
    for (size_t k = 0; k < cols; ++k) {
      const double v = r < m.values.size() && k < m.values[r].size() ? m.values[r][k] : std::nan("");
      // White (lo) to dark blue (hi); missing cells grey.
      const double t = std::isfinite(v) && m.hi > m.lo ? std::clamp((v - m.lo) / (m.hi - m.lo), 0.0, 1.0) : 0;
      const std::string fill = std::isfinite(v) ? fmt::format("rgb({},{},{})", static_cast<int>(255 - 247 * t),
                                                                static_cast<int>(255 - 207 * t), static_cast<int>(255 - 148 * t))
                                                  : "#ccc";
      const double x = kLeft + w * static_cast<double>(k), y = kTop + h * static_cast<double>(r);
      body += fmt::format(R"(<rect class="cell" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}" stroke="#fff"/>)",
                          x, y, w, h, fill);
      if (std::isfinite(v))
        body += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="middle" fill="{}">{:.2f}</text>)", x + w / 2,
                            y + h / 2 + 4, t > 0.55 ? "#fff" : "#000", v);
    }
  for (size_t k = 0; k < cols; ++k)
    body += fmt::format(R"(<text x="{:.1f}" y="{}" text-anchor="middle">{}</text>)", kLeft + w * (k + 0.5),
                        kHeight - kBottom + 15, escape_xml(m.x_labels[k]));
  for (size_t r = 0; r < rows; ++r)
    body += fmt::format(R"(<text x="{}" y="{:.1f}" text-anchor="end">{}</text>)", kLeft - 6, kTop + h * (r + 0.5) + 4,
                        escape_xml(m.y_labels[r]));
  body += fmt::format(R"svg(<text x="{:.1f}" y="{}" text-anchor="middle">{}</text><text x="14" y="{:.1f}" text-anchor="middle" transform="rotate(-90 14 {:.1f})">{}</text></g>)svg",
                      (kLeft + kWidth - kRight) / 2, kHeight - 10, escape_xml(m.x_label), (kTop + kHeight - kBottom) / 2,
                      (kTop + kHeight - kBottom) / 2, escape_xml(m.y_label));
  return frame(m.title, body);
}

}  // namespace attnlab::report
