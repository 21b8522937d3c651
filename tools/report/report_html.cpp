#include "tools/report/report_html.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "tools/report/svg_plot.h"

namespace attnlab::report {
namespace {

bool is_number(const std::string& s) {
  if (s.empty()) return false;
  char* end = nullptr;
  std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

double accuracy_of(const RunData& r) {
  if (r.record.contains("metrics") && r.record["metrics"].contains("accuracy"))
    return r.record["metrics"]["accuracy"].get<double>();
  return NAN;
}

double number(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : NAN;
}

std::string fixed(double v, const char* format) { return std::isfinite(v) ? fmt::format(fmt::runtime(format), v) : "–"; }

// A mixer value "{type: swa, window: 8}" reads "swa, window: 8" in legends.
std::string short_value(const std::string& v) {
  const std::string prefix = "{type: ";
  if (v.rfind(prefix, 0) == 0 && v.size() > prefix.size() && v.back() == '}')
    return v.substr(prefix.size(), v.size() - prefix.size() - 1);
  return v;
}

std::string joined_values(const RunData& r, const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) {
    auto it = r.values.find(k);
    out += (out.empty() ? "" : ", ") + (it == r.values.end() ? "?" : short_value(it->second));
  }
  return out;
}

std::vector<std::string> swept_axes(const SweepData& s) {  // every axis but the seed
  std::vector<std::string> out;
  for (const auto& a : s.axes)
    if (a != "run.seed") out.push_back(a);
  return out;
}

// Mean curve (over runs) of `metric` at each step the runs share.
Series mean_curve(const std::vector<const RunData*>& runs, const std::string& metric, const std::string& name) {
  std::map<double, std::pair<double, int>> at;
  for (const RunData* r : runs) {
    auto it = r->curves.find(metric);
    if (it == r->curves.end()) continue;
    for (const auto& [step, v] : it->second) at[step].first += v, ++at[step].second;
  }
  Series s;
  s.name = name;
  for (const auto& [step, sum] : at)
    if (sum.second == static_cast<int>(runs.size())) s.x.push_back(step), s.y.push_back(sum.first / sum.second);
  return s;
}

std::string table_html(const std::vector<const RunData*>& runs, const std::vector<std::string>& axes) {
  bool accuracy = false;
  for (const RunData* r : runs) accuracy |= std::isfinite(accuracy_of(*r));
  std::string h = "<table class=\"results\"><thead><tr><th>run</th>";
  for (const auto& a : axes) h += "<th>" + escape_xml(a) + "</th>";
  h += "<th>parameters</th><th>final val loss</th><th>best val loss</th>";
  if (accuracy) h += "<th>accuracy</th>";
  h += "<th>tokens/s</th><th>wall s</th><th>status</th></tr></thead><tbody>";
  for (const RunData* r : runs) {
    h += "<tr><td>" + escape_xml(r->name) + "</td>";
    for (const auto& a : axes) h += "<td>" + escape_xml(r->values.count(a) ? r->values.at(a) : "") + "</td>";
    h += fmt::format("<td>{}</td><td>{}</td><td>{}</td>", fixed(number(r->record, "parameters") / 1e6, "{:.3f}M"),
                     fixed(number(r->record, "final_val_loss"), "{:.4f}"), fixed(number(r->record, "best_val_loss"), "{:.4f}"));
    if (accuracy) h += "<td>" + fixed(accuracy_of(*r), "{:.3f}") + "</td>";
    h += fmt::format("<td>{}</td><td>{}</td><td>{}</td></tr>", fixed(number(r->record, "tokens_per_s"), "{:.0f}"),
                     fixed(number(r->record, "wall_s"), "{:.0f}"), escape_xml(r->record.value("status", std::string("–"))));
  }
  return h + "</tbody></table>\n";
}

std::string curves_chart(const std::vector<const RunData*>& runs, const std::string& metric, const std::string& title) {
  LineChart c;
  c.title = title, c.x_label = "step", c.y_label = metric;
  for (const RunData* r : runs) c.series.push_back(mean_curve({r}, metric, r->name));
  return render(c);
}

// One chart per swept axis: a curve per value of that axis, averaged over the other axes.
std::string axis_charts(const SweepData& s, const std::string& metric) {
  std::string out;
  for (const std::string& axis : swept_axes(s)) {
    std::map<std::string, std::vector<const RunData*>> by_value;
    std::vector<std::string> order;
    for (const RunData& r : s.runs) {
      const std::string v = r.values.count(axis) ? r.values.at(axis) : "?";
      if (!by_value.count(v)) order.push_back(v);
      by_value[v].push_back(&r);
    }
    if (order.size() < 2) continue;
    LineChart c;
    c.title = fmt::format("{} by {} (mean over the other axes)", metric, axis);
    c.x_label = "step", c.y_label = metric;
    for (const auto& v : order) c.series.push_back(mean_curve(by_value[v], metric, short_value(v)));
    out += render(c);
  }
  return out;
}

struct RecallPanel {
  std::string title;
  std::vector<Series> series;
};

std::vector<RecallPanel> recall_panels(const SweepData& s, const RecallLayout& L) {
  std::map<std::string, std::map<std::string, std::map<double, std::pair<double, int>>>> acc;  // panel, series, x
  std::vector<std::string> panel_order, series_order;
  for (const RunData& r : s.runs) {
    const double a = accuracy_of(r);
    if (!std::isfinite(a) || !r.values.count(L.x)) continue;
    const std::string p = L.panels.empty() ? "" : joined_values(r, L.panels);
    const std::string se = L.series.empty() ? "all" : joined_values(r, L.series);
    if (std::find(panel_order.begin(), panel_order.end(), p) == panel_order.end()) panel_order.push_back(p);
    if (std::find(series_order.begin(), series_order.end(), se) == series_order.end()) series_order.push_back(se);
    auto& cell = acc[p][se][std::stod(r.values.at(L.x))];
    cell.first += a, ++cell.second;
  }
  std::vector<RecallPanel> out;
  for (const auto& p : panel_order) {
    RecallPanel panel;
    panel.title = L.panels.empty() ? "accuracy" : fmt::format("{} = {}", fmt::join(L.panels, ", "), p);
    for (const auto& se : series_order) {
      Series line;
      line.name = se;
      for (const auto& [x, sum] : acc[p][se]) line.x.push_back(x), line.y.push_back(sum.first / sum.second);
      if (!line.x.empty()) panel.series.push_back(line);
    }
    out.push_back(panel);
  }
  return out;
}

std::string needle_html(const RunData& r) {
  if (r.needle.is_null() || !r.needle.contains("results")) return "";
  std::set<double> lengths, depths;
  std::map<std::pair<double, double>, double> at;
  for (const auto& row : r.needle["results"]) {
    const double l = row["length"].get<double>(), d = row["depth"].get<double>();
    lengths.insert(l), depths.insert(d), at[{l, d}] = row["accuracy"].get<double>();
  }
  HeatMap m;
  m.title = fmt::format("{}: needle accuracy", r.name);
  m.x_label = "context length (tokens)", m.y_label = "needle depth";
  for (double l : lengths) m.x_labels.push_back(fmt::format("{:g}", l));
  for (double d : depths) {
    m.y_labels.push_back(fmt::format("{:g}", d));
    std::vector<double> row;
    for (double l : lengths) row.push_back(at.count({l, d}) ? at[{l, d}] : NAN);
    m.values.push_back(row);
  }
  return render(m);
}

std::string config_html(const RunData& r) {
  if (r.config_yaml.empty()) return "";
  return fmt::format("<details><summary>config of {}</summary><pre>{}</pre></details>\n", escape_xml(r.name),
                     escape_xml(r.config_yaml));
}

// Per mixer of a bench file: fwd+bwd tokens/s and each implementation's peak tensor memory against
// T, one line per implementation. Files written before the per-implementation meter carry the
// process's peak RSS instead (peak_rss_mb), which is read when peak_mb is absent.
std::string bench_html(const BenchData& b) {
  std::map<std::string, std::map<std::string, Series>> tps, rss;  // mixer -> impl -> series
  std::vector<std::string> mixers;
  for (const auto& r : b.rows) {
    const std::string m = r["mixer"].get<std::string>(), impl = r["impl"].get<std::string>();
    if (!tps.count(m)) mixers.push_back(m);
    const double T = r["seq"].get<double>(), tokens = r.value("tokens", T), ms = r["fwd_bwd_ms"].get<double>();
    Series& a = tps[m][impl];
    a.name = impl, a.x.push_back(T), a.y.push_back(ms > 0 ? tokens / ms * 1e3 : NAN);
    Series& c = rss[m][impl];
    c.name = impl, c.x.push_back(T), c.y.push_back(r.value("peak_mb", r.value("peak_rss_mb", NAN)));
  }
  std::string h = fmt::format("<section class=\"bench\"><h2>bench {}</h2><div class=\"charts\">", escape_xml(b.path));
  for (const auto& m : mixers) {
    LineChart t, mem;
    t.title = fmt::format("{}: tokens/s, forward+backward", m), t.x_label = "sequence length T", t.y_label = "tokens/s";
    mem.title = fmt::format("{}: peak tensor memory above inputs, forward+backward", m), mem.x_label = "sequence length T", mem.y_label = "MB";
    t.log_x = mem.log_x = true, t.markers = mem.markers = true, t.y_min = 0, mem.y_min = 0;
    for (auto& [impl, s] : tps[m]) t.series.push_back(s);
    for (auto& [impl, s] : rss[m]) mem.series.push_back(s);
    h += render(t) + render(mem);
  }
  return h + "</div></section>\n";
}

const char* kStyle = R"(body{font-family:sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}
h3{font-size:15px}table.results{border-collapse:collapse;font-size:13px;margin:8px 0}
table.results td,table.results th{border:1px solid #ccc;padding:3px 8px;text-align:right}
table.results td:first-child,table.results th:first-child{text-align:left}
svg.chart{margin:6px 12px 6px 0;border:1px solid #ddd}pre{background:#f6f6f6;padding:8px;font-size:12px;overflow:auto}
.charts{display:flex;flex-wrap:wrap})";

}  // namespace

RecallLayout recall_layout(const SweepData& s) {
  RecallLayout L;
  bool any_accuracy = false;
  for (const RunData& r : s.runs) any_accuracy |= std::isfinite(accuracy_of(r));
  if (!any_accuracy) return L;
  const std::vector<std::string> axes = swept_axes(s);
  auto numeric = [&](const std::string& a) {
    for (const RunData& r : s.runs)
      if (!r.values.count(a) || !is_number(r.values.at(a))) return false;
    return true;
  };
  for (const auto& a : axes)
    if (a == "model.dim" && numeric(a)) L.x = a;
  for (const auto& a : axes)
    if (L.x.empty() && numeric(a)) L.x = a;
  if (L.x.empty()) return L;
  for (const auto& a : axes)
    if (a != L.x && a.find("mixer") != std::string::npos) L.series.push_back(a);
  for (const auto& a : axes)
    if (a != L.x && std::find(L.series.begin(), L.series.end(), a) == L.series.end())
      (L.series.empty() ? L.series : L.panels).push_back(a);
  return L;
}

std::string render_html(const ReportInput& in) {
  std::string h = fmt::format("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>attnlab report</title>"
                              "<style>{}</style></head><body>\n<h1>attnlab report</h1>\n",
                              kStyle);
  for (const SweepData& s : in.sweeps) {
    std::vector<const RunData*> runs;
    for (const RunData& r : s.runs) runs.push_back(&r);
    h += fmt::format("<section class=\"sweep\"><h2>sweep {} ({} runs)</h2>\n<p>{}</p>\n", escape_xml(s.name), runs.size(),
                     escape_xml(s.dir));
    h += table_html(runs, s.axes);
    if (const RecallLayout L = recall_layout(s); !L.x.empty()) {
      h += fmt::format("<h3>recall: accuracy vs {}</h3><div class=\"charts\">", escape_xml(L.x));
      for (const RecallPanel& p : recall_panels(s, L)) {
        LineChart c;
        c.title = p.title, c.x_label = L.x, c.y_label = "answer accuracy";
        c.log_x = true, c.markers = true, c.y_min = 0, c.y_max = 1, c.series = p.series;
        h += render(c);
      }
      h += "</div>\n";
    }
    h += "<h3>loss curves</h3><div class=\"charts\">";
    h += curves_chart(runs, "val/loss", "validation loss, every run");
    h += axis_charts(s, "val/loss");
    h += curves_chart(runs, "train/loss", "training loss, every run");
    h += "</div>\n";
    for (const RunData* r : runs) h += needle_html(*r);
    for (const RunData* r : runs) h += config_html(*r);
    h += "</section>\n";
  }
  for (const RunData& r : in.runs) {
    h += fmt::format("<section class=\"run\"><h2>run {}</h2>\n<p>{}</p>\n", escape_xml(r.name), escape_xml(r.dir));
    h += table_html({&r}, {});
    h += "<div class=\"charts\">";
    LineChart c;
    c.title = "loss", c.x_label = "step", c.y_label = "loss";
    for (const char* m : {"train/loss", "val/loss"}) c.series.push_back(mean_curve({&r}, m, m));
    h += render(c);
    if (r.curves.count("val/accuracy")) {
      LineChart a;
      a.title = "answer accuracy", a.x_label = "step", a.y_label = "accuracy", a.y_min = 0, a.y_max = 1;
      a.series = {mean_curve({&r}, "val/accuracy", "val/accuracy")};
      h += render(a);
    }
    h += needle_html(r) + "</div>\n" + config_html(r) + "</section>\n";
  }
  for (const BenchData& b : in.benches) h += bench_html(b);
  return h + "</body></html>\n";
}

std::string text_summary(const ReportInput& in) {
  std::string out;
  auto line = [&](const RunData& r, const std::string& label) {
    out += fmt::format("  {:<40} val loss {:>8}  best {:>8}  accuracy {:>6}  {:>8} tok/s  {}\n", label,
                       fixed(number(r.record, "final_val_loss"), "{:.4f}"), fixed(number(r.record, "best_val_loss"), "{:.4f}"),
                       fixed(accuracy_of(r), "{:.3f}"), fixed(number(r.record, "tokens_per_s"), "{:.0f}"),
                       r.record.value("status", std::string("")));
  };
  for (const SweepData& s : in.sweeps) {
    out += fmt::format("sweep {} ({} runs, {})\n", s.name, s.runs.size(), s.dir);
    for (const RunData& r : s.runs) line(r, r.name);
    if (const RecallLayout L = recall_layout(s); !L.x.empty())
      for (const RecallPanel& p : recall_panels(s, L)) {
        out += fmt::format("  accuracy by {} ({}):\n", L.x, p.title);
        for (const Series& se : p.series) {
          out += fmt::format("    {:<24}", se.name);
          for (size_t i = 0; i < se.x.size(); ++i) out += fmt::format("  {:g}: {:.3f}", se.x[i], se.y[i]);
          out += "\n";
        }
      }
  }
  for (const RunData& r : in.runs) line(r, "run " + r.name);
  for (const BenchData& b : in.benches) {
    out += fmt::format("bench {} (fwd+bwd tokens/s):\n", b.path);
    for (const auto& r : b.rows)
      out += fmt::format("  {:<12} {:<28} T {:>7}: {:>10.0f} tok/s\n", r["mixer"].get<std::string>(), r["impl"].get<std::string>(),
                         r["seq"].get<int64_t>(), r.value("tokens", r["seq"].get<double>()) / r["fwd_bwd_ms"].get<double>() * 1e3);
  }
  return out;
}

}  // namespace attnlab::report
