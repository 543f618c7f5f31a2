// The run report page. The C++ side gathers each run's data into one JSON object embedded in
// the page; the page's script hands the curves to Chart.js. Tables (confusion matrix,
// checkpoints, model summary) are plain HTML, so they read without any script.
#include "graft/host/report.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "graft/error.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace graft {

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string esc(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// Text inside <script>: nothing may close the element early.
std::string script_safe(std::string s) {
  for (std::size_t at = 0; (at = s.find("</", at)) != std::string::npos; at += 3) s.replace(at, 2, "<\\/");
  return s;
}

std::string pct(double v) { return std::isfinite(v) ? fmt::format("{:.2f}%", 100 * v) : "-"; }
std::string pct(const json& v) { return v.is_number() ? pct(v.get<double>()) : "-"; }

// A number of a record, NaN when absent or not a number (a NaN is written as null).
double number(const json& record, const std::string& key) {
  return record.contains(key) && record[key].is_number() ? record[key].get<double>() : NAN;
}

std::string num(const json& v, const char* format = "{:.4g}") {
  if (v.is_number()) return fmt::format(fmt::runtime(format), v.get<double>());
  if (v.is_null()) return "-";
  return esc(v.is_string() ? v.get<std::string>() : v.dump());
}

std::string duration(double s) {
  if (!std::isfinite(s) || s < 0) return "-";
  const auto t = static_cast<std::int64_t>(s + 0.5);
  return t >= 3600 ? fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60) : fmt::format("{}:{:02}", t / 60, t % 60);
}

// Everything the page shows of one run dir.
struct Run {
  std::string dir, label;
  json info = json::object();    // run.json
  json final = json::object();   // report.json
  std::vector<json> steps, epochs;  // metrics.jsonl records
  std::string recipe, report_text;
};

Run load_run(const std::string& dir) {
  const fs::path d(dir);
  std::error_code ec;
  if (!fs::is_directory(d, ec)) throw Error::usage(dir + ": no such run dir");
  if (!fs::exists(d / "metrics.jsonl") && !fs::exists(d / "run.json"))
    throw Error::usage(dir + ": not a run dir (no metrics.jsonl or run.json; `graft train` prints the run dir it writes)");
  Run r;
  r.dir = dir;
  r.label = fs::weakly_canonical(d, ec).filename().string();
  if (r.label.empty()) r.label = dir;
  try {
    if (fs::exists(d / "run.json")) r.info = json::parse(read_text(d / "run.json"));
  } catch (const json::exception&) {  // being replaced: the report does without it
  }
  try {
    if (fs::exists(d / "report.json")) r.final = json::parse(read_text(d / "report.json"));
  } catch (const json::exception&) {
  }
  std::istringstream lines(read_text(d / "metrics.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    try {
      json rec = json::parse(line);
      if (rec.contains("epoch_seconds")) r.epochs.push_back(std::move(rec));
      else if (rec.contains("loss")) r.steps.push_back(std::move(rec));
    } catch (const json::exception&) {  // a line still being written
    }
  }
  r.recipe = read_text(d / "recipe.yaml");
  r.report_text = read_text(d / "report.txt");
  return r;
}

// A curve: one run's values of `key` against `x` over `records`.
json series(const std::vector<json>& records, const std::string& x, const std::string& key) {
  json points = json::array();
  for (const auto& rec : records) {
    if (!rec.contains(x) || !rec.contains(key)) continue;
    const auto& v = rec[key];
    if (!v.is_number() || !std::isfinite(v.get<double>())) continue;
    points.push_back({{"x", rec[x]}, {"y", v}});
  }
  return points;
}

std::vector<std::string> classes_of(const Run& r) {
  std::vector<std::string> c;
  if (r.info.contains("classes") && r.info["classes"].is_array())
    for (const auto& n : r.info["classes"]) c.push_back(n.is_string() ? n.get<std::string>() : n.dump());
  return c;
}

std::string class_name(const std::vector<std::string>& classes, std::int64_t k) {
  return k >= 0 && static_cast<std::size_t>(k) < classes.size() ? classes[static_cast<std::size_t>(k)] : std::to_string(k);
}

// The evaluation the report shows: the test pass when there is one, else the last validation.
const json* shown_eval(const Run& r) {
  if (!r.info.contains("eval")) return nullptr;
  const auto& e = r.info["eval"];
  if (e.contains("test")) return &e["test"];
  if (e.contains("val")) return &e["val"];
  return nullptr;
}

std::string status_line(const Run& r) {
  const std::string status = r.info.value("status", r.final.empty() ? "unknown" : "finished");
  std::string s = status;
  const std::string reason = r.info.value("stop_reason", r.final.value("stop_reason", ""));
  if (status == "running") s += fmt::format(" (epoch {} of {})", r.info.value("epoch", std::int64_t{0}), r.info.value("epochs", std::int64_t{0}));
  else if (!reason.empty() && reason != "error") s += " (" + reason + ")";
  return s;
}

double run_seconds(const Run& r) {
  if (std::isfinite(number(r.final, "seconds"))) return number(r.final, "seconds");
  if (std::isfinite(number(r.info, "seconds"))) return number(r.info, "seconds");
  return r.steps.empty() ? NAN : number(r.steps.back(), "time");
}

double median_speed(const Run& r) {
  std::vector<double> v;
  for (const auto& s : r.steps)
    if (s.contains("img_per_s") && s["img_per_s"].is_number() && s["img_per_s"].get<double>() > 0) v.push_back(s["img_per_s"]);
  if (v.empty()) return NAN;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

std::string summary_table(const std::vector<Run>& runs) {
  std::string h = "<table class=\"grid\" id=\"runs\"><tr><th>run</th><th>recipe</th><th>status</th><th>epochs</th><th>steps</th>"
                  "<th>time</th><th>img/s (median)</th><th>last val top1</th><th>test top1</th><th>test loss</th></tr>\n";
  for (std::size_t k = 0; k < runs.size(); ++k) {
    const auto& r = runs[k];
    const double val1 = r.epochs.empty() ? NAN : number(r.epochs.back(), "val/top1");
    json test = r.final.contains("test") ? r.final["test"]["metrics"] : json::object();
    h += fmt::format("<tr><td><a href=\"#run-{}\">{}</a></td><td>{}</td><td class=\"status-{}\">{}</td><td>{}</td><td>{}</td><td>{}</td>"
                     "<td>{:.0f}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                     k, esc(r.label), esc(r.info.value("recipe", r.final.value("recipe", ""))), esc(r.info.value("status", "")),
                     esc(status_line(r)), r.epochs.empty() ? 0 : r.epochs.back().value("epoch", std::int64_t{0}),
                     r.info.value("step", r.final.value("steps", std::int64_t{0})), duration(run_seconds(r)),
                     std::isfinite(median_speed(r)) ? median_speed(r) : 0.0, pct(val1),
                     pct(number(test, "top1")), test.contains("loss") ? num(test["loss"]) : "-");
  }
  return h + "</table>\n";
}

std::string confusion_html(const json& e, const std::vector<std::string>& classes, std::size_t k) {
  std::string h;
  if (e.contains("confusion")) {
    const auto& m = e["confusion"];
    h += fmt::format("<table class=\"confusion\" id=\"confusion-{}\" data-split=\"{}\"><tr><th class=\"corner\">true \\ predicted</th>", k,
                     esc(e.value("split", "")));
    for (std::size_t j = 0; j < m.size(); ++j) h += "<th>" + esc(class_name(classes, static_cast<std::int64_t>(j))) + "</th>";
    h += "</tr>\n";
    for (std::size_t i = 0; i < m.size(); ++i) {
      std::int64_t row = 0;
      for (const auto& c : m[i]) row += c.get<std::int64_t>();
      h += "<tr><th>" + esc(class_name(classes, static_cast<std::int64_t>(i))) + "</th>";
      for (std::size_t j = 0; j < m[i].size(); ++j) {
        const auto c = m[i][j].get<std::int64_t>();
        const double a = row ? static_cast<double>(c) / static_cast<double>(row) : 0.0;
        h += fmt::format("<td style=\"background:rgba({},{:.3f})\" class=\"{}\" title=\"{} -> {}: {}\">{}</td>",
                         i == j ? "31,119,180" : "214,39,40", a, a > 0.5 ? "dark" : "", esc(class_name(classes, static_cast<std::int64_t>(i))),
                         esc(class_name(classes, static_cast<std::int64_t>(j))), c, c);
      }
      h += "</tr>\n";
    }
    h += "</table>\n";
  } else if (e.contains("top_confusions")) {
    h += "<p>Too many classes for a matrix; the largest confusions (true &rarr; predicted: count):</p><ul>";
    for (const auto& c : e["top_confusions"])
      h += fmt::format("<li>{} &rarr; {}: {}</li>", esc(class_name(classes, c["target"])), esc(class_name(classes, c["predicted"])),
                       c["count"].get<std::int64_t>());
    h += "</ul>\n";
  }
  return h;
}

std::string per_class_html(const json& e, const std::vector<std::string>& classes, std::size_t k) {
  if (!e.contains("per_class")) return {};
  const auto& correct = e["per_class"]["correct"];
  const auto& total = e["per_class"]["total"];
  std::string h = fmt::format("<table class=\"grid\" id=\"per-class-{}\"><tr><th>class</th><th>correct</th><th>samples</th><th>accuracy</th></tr>", k);
  for (std::size_t i = 0; i < correct.size(); ++i) {
    const auto c = correct[i].get<std::int64_t>(), t = total[i].get<std::int64_t>();
    h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", esc(class_name(classes, static_cast<std::int64_t>(i))), c, t,
                     t ? pct(static_cast<double>(c) / static_cast<double>(t)) : "-");
  }
  return h + "</table>\n";
}

std::string misclassified_html(const json& e, const std::vector<std::string>& classes) {
  if (!e.contains("misclassified") || e["misclassified"].empty()) return "<p>No misclassified sample.</p>\n";
  std::string h = "<div class=\"thumbs\">";
  for (const auto& m : e["misclassified"]) {
    const std::string img = m.value("image", "");
    h += fmt::format("<figure>{}<figcaption>#{}<br>true <b>{}</b><br>predicted <b>{}</b> ({:.1f}%)</figcaption></figure>",
                     img.empty() ? "<div class=\"noimg\">no image</div>" : "<img src=\"" + img + "\" alt=\"sample\">",
                     m["index"].get<std::int64_t>(), esc(class_name(classes, m["target"])), esc(class_name(classes, m["predicted"])),
                     100 * number(m, "confidence"));
  }
  return h + "</div>\n";
}

std::string checkpoints_html(const Run& r) {
  const fs::path dir = fs::path(r.dir) / "checkpoints";
  std::vector<std::pair<fs::file_time_type, std::string>> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!name.empty() && name[0] != '.' && e.path().extension() == ".pth") files.emplace_back(fs::last_write_time(e.path(), ec), name);
  }
  if (files.empty()) return "<p>No checkpoint.</p>\n";
  std::sort(files.begin(), files.end());
  const json known = r.info.contains("checkpoints") ? r.info["checkpoints"] : json::object();
  std::string h = "<table class=\"grid checkpoints\"><tr><th>file</th><th>MB</th><th>epoch</th><th>step</th><th>metrics at the save</th></tr>";
  for (const auto& [t, name] : files) {
    const double mb = static_cast<double>(fs::file_size(dir / name, ec)) / 1e6;
    std::string metrics, epoch = "-", step = "-";
    if (known.contains(name)) {
      const auto& c = known[name];
      epoch = std::to_string(c.value("epoch", std::int64_t{0}));
      step = std::to_string(c.value("step", std::int64_t{0}));
      for (const auto& [key, v] : c["metrics"].items())
        if (key != "lr") metrics += fmt::format("{}{} {}", metrics.empty() ? "" : ", ", esc(key), key.find("top") != std::string::npos ? pct(v) : num(v));
    }
    h += fmt::format("<tr><td>{}</td><td>{:.1f}</td><td>{}</td><td>{}</td><td>{}</td></tr>", esc(name), mb, epoch, step, metrics);
  }
  return h + "</table>\n";
}

std::string model_html(const json& m) {
  std::string h;
  if (m.contains("params"))
    h += fmt::format("<p>backbone <b>{}</b>, input {}, {} parameters, {} trainable</p>", esc(m.value("backbone", "")),
                     esc(m.value("input_shape", json::array()).dump()), m["params"]["total"].get<std::int64_t>(),
                     m["params"]["trainable"].get<std::int64_t>());
  if (m.contains("weights")) {
    const auto& w = m["weights"];
    h += "<h4>Loading report</h4><p>" + esc(w.value("file", "")) + ": " + esc(w.value("summary", "")) + "</p>";
    for (const char* k : {"missing", "unexpected"})
      if (w.contains(k) && !w[k].empty()) h += fmt::format("<p>{}: <code>{}</code></p>", k, esc(w[k].dump()));
    if (w.contains("mismatched") && !w["mismatched"].empty()) h += "<p>shape mismatches: <code>" + esc(w["mismatched"].dump()) + "</code></p>";
  } else {
    h += "<p>No pretrained weights (the model started from its initialisation).</p>";
  }
  if (m.contains("changes") && !m["changes"].empty()) {
    h += "<ul>";
    for (const auto& c : m["changes"]) h += "<li>" + esc(c.get<std::string>()) + "</li>";
    h += "</ul>";
  }
  if (m.contains("summary")) {
    h += "<details><summary>Model summary (" + std::to_string(m["summary"].size()) + " modules)</summary><table class=\"grid summary\">"
         "<tr><th>layer (path)</th><th>type</th><th>output shape</th><th>params</th><th>trainable</th><th>origin</th></tr>";
    for (const auto& r : m["summary"])
      h += fmt::format("<tr><td style=\"padding-left:{}em\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                       0.3 + r.value("depth", 0), esc(r.value("path", "")), esc(r.value("type", "")),
                       r["output_shape"].empty() ? "" : esc(r["output_shape"].dump()), r.value("params", std::int64_t{0}),
                       r.value("trainable", std::int64_t{0}), esc(r.value("origin", "")));
    h += "</table></details>";
  }
  return h + "\n";
}

const std::string& chartjs_source() {
  static std::once_flag once;
  static std::string source;
  std::call_once(once, [] {
    const std::string p = chartjs_path();
    if (fs::exists(p)) source = read_text(p);
  });
  return source;
}

constexpr const char* style = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table.grid{border-collapse:collapse;margin:.5em 0}table.grid td,table.grid th{border:1px solid #ddd;padding:2px 8px;text-align:right}
table.grid td:first-child{text-align:left}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:1em}
.chart{position:relative;height:280px;border:1px solid #eee;padding:4px}
table.confusion{border-collapse:collapse;font-size:12px}table.confusion td,table.confusion th{border:1px solid #ddd;padding:3px 6px;text-align:right;min-width:2.5em}
table.confusion td.dark{color:#fff}.corner{font-weight:normal;color:#666}
.thumbs{display:flex;flex-wrap:wrap;gap:10px}.thumbs figure{margin:0;text-align:center;font-size:12px;width:110px}
.thumbs img{width:96px;height:96px;object-fit:contain;image-rendering:pixelated;background:#000}
.status-failed{color:#b00}.status-interrupted{color:#a60}.status-running{color:#06c}
pre{background:#f6f6f6;padding:.6em;overflow:auto;max-height:30em}.banner{background:#fee;border:1px solid #c99;padding:.5em}
.error{color:#b00;white-space:pre-wrap}
)";

// Draws the charts of GRAFT.charts, then records in the DOM what each canvas holds (so a
// headless browser can check that every chart drew its data) and any script error.
constexpr const char* script = R"(
(function(){
  var data = JSON.parse(document.getElementById('graft-data').textContent);
  var drawn = 0;
  if (typeof Chart === 'undefined') { document.body.dataset.charts = 'unavailable'; return; }
  Chart.defaults.animation = false;
  data.charts.forEach(function(c){
    var canvas = document.getElementById(c.id);
    var chart = new Chart(canvas, {
      type: c.type,
      data: c.type === 'bar' ? {labels: c.labels, datasets: c.datasets.map(function(d){
              return {label: d.label, data: d.data, backgroundColor: d.color, borderColor: d.color};})}
            : {datasets: c.datasets.map(function(d){
              return {label: d.label, data: d.data, borderColor: d.color, backgroundColor: d.color, borderWidth: 2,
                      pointRadius: d.data.length > 60 ? 0 : 3, tension: 0, spanGaps: true, borderDash: d.dash || []};})},
      options: {responsive: true, maintainAspectRatio: false, parsing: c.type === 'bar' ? true : undefined,
                plugins: {title: {display: true, text: c.title}, legend: {display: true}},
                scales: c.type === 'bar' ? {y: {min: 0, max: 100, title: {display: true, text: c.ylabel}}}
                        : {x: {type: 'linear', ticks: {precision: 0}, title: {display: true, text: c.xlabel}},
                           y: {type: c.log ? 'logarithmic' : 'linear', title: {display: true, text: c.ylabel}}}}
    });
    chart.draw();
    // pixels of the datasets' colours: the chart drew its data
    // inside the plot area only: the legend's boxes have the same colours
    var a = chart.chartArea, r = chart.currentDevicePixelRatio || 1;
    var ctx = canvas.getContext('2d');
    var px = ctx.getImageData(Math.floor(a.left * r), Math.floor(a.top * r), Math.max(1, Math.floor((a.right - a.left) * r)),
                              Math.max(1, Math.floor((a.bottom - a.top) * r))).data;
    var colours = c.datasets.map(function(d){ var m = d.color.match(/\d+/g); return [+m[0], +m[1], +m[2]]; });
    var painted = 0, hits = 0;
    for (var i = 0; i < px.length; i += 4) {
      if (px[i + 3] === 0) continue;
      painted++;
      for (var k = 0; k < colours.length; k++)
        if (Math.abs(px[i] - colours[k][0]) < 12 && Math.abs(px[i + 1] - colours[k][1]) < 12 && Math.abs(px[i + 2] - colours[k][2]) < 12 && px[i + 3] > 200) { hits++; break; }
    }
    canvas.dataset.painted = painted;
    canvas.dataset.dataPixels = hits;
    canvas.dataset.points = c.datasets.reduce(function(n, d){ return n + d.data.length; }, 0);
    drawn++;
  });
  document.body.dataset.charts = drawn;
})();
)";

const char* palette[] = {"rgb(31,119,180)", "rgb(255,127,14)", "rgb(44,160,44)", "rgb(214,39,40)", "rgb(148,103,189)",
                         "rgb(140,86,75)",  "rgb(227,119,194)", "rgb(127,127,127)", "rgb(188,189,34)", "rgb(23,190,207)"};

}  // namespace

std::string chartjs_path() {
  if (const char* env = std::getenv("GRAFT_CHARTJS"); env && *env) return env;
  return "/usr/share/javascript/chart.js/chart.min.js";
}

std::string render_report(const std::vector<std::string>& run_dirs) {
  if (run_dirs.empty()) throw Error::usage("graft report: no run dir given");
  std::vector<Run> runs;
  for (const auto& d : run_dirs) runs.push_back(load_run(d));
  // labels must tell the runs apart
  for (std::size_t i = 0; i < runs.size(); ++i)
    for (std::size_t j = i + 1; j < runs.size(); ++j)
      if (runs[i].label == runs[j].label) runs[j].label += " (" + std::to_string(j + 1) + ")";

  // the curves: one chart per quantity, every run's series in it
  json charts = json::array();
  std::size_t colour = 0;
  struct Curve { const char* id; const char* title; const char* xlabel; const char* ylabel; bool per_step; std::vector<std::string> keys; bool log; };
  const std::vector<Curve> curves = {
      {"chart-loss-step", "Training loss per step", "step", "loss", true, {"loss"}, false},
      {"chart-lr-step", "Learning rate per step", "step", "lr", true, {"lr"}, false},
      {"chart-speed-step", "Throughput per step", "step", "images/s", true, {"img_per_s"}, false},
      {"chart-loss-epoch", "Loss per epoch", "epoch", "loss", false, {"train/loss", "val/loss"}, false},
      {"chart-acc-epoch", "Accuracy per epoch (%)", "epoch", "accuracy %", false, {"train/top1", "val/top1", "train/top5", "val/top5"}, false},
      {"chart-lr-epoch", "Learning rate per epoch", "epoch", "lr", false, {"lr"}, false},
  };
  std::map<std::string, std::string> run_colour;
  for (const auto& r : runs) run_colour[r.label] = palette[colour++ % std::size(palette)];
  std::string chart_divs;
  for (const auto& c : curves) {
    json datasets = json::array();
    std::size_t variant = 0;
    for (const auto& key : c.keys) {
      for (const auto& r : runs) {
        json points = series(c.per_step ? r.steps : r.epochs, c.per_step ? "step" : "epoch", key);
        if (points.empty()) continue;
        if (c.id == std::string("chart-acc-epoch"))
          for (auto& p : points) p["y"] = 100 * p["y"].get<double>();
        // one colour per run; within a run, a colour per series when only one run
        const std::string col = runs.size() == 1 ? palette[variant % std::size(palette)] : run_colour[r.label];
        json d = {{"label", runs.size() == 1 ? key : r.label + " " + key}, {"data", points}, {"color", col}};
        if (runs.size() > 1 && key.rfind("val/", 0) == 0) d["dash"] = {6, 3};
        datasets.push_back(d);
      }
      ++variant;
    }
    if (datasets.empty()) continue;  // nothing to draw yet (no validation, no epoch done)
    charts.push_back({{"id", c.id}, {"type", "line"}, {"title", c.title}, {"xlabel", c.xlabel}, {"ylabel", c.ylabel}, {"datasets", datasets}});
    chart_divs += fmt::format("<div class=\"chart\"><canvas id=\"{}\"></canvas></div>\n", c.id);
  }

  std::string body;
  const bool have_chartjs = !chartjs_source().empty();
  if (!have_chartjs)
    body += "<p class=\"banner\">The charts need Chart.js, not found at " + esc(chartjs_path()) +
            " (apt-get install libjs-chart.js, or set GRAFT_CHARTJS); the tables below are complete.</p>\n";
  body += "<h2 id=\"overview\">Runs</h2>\n" + summary_table(runs);
  body += "<h2 id=\"curves\">Curves</h2>\n";
  body += chart_divs.empty() ? "<p>No metric recorded yet.</p>\n" : "<div class=\"charts\">\n" + chart_divs + "</div>\n";

  for (std::size_t k = 0; k < runs.size(); ++k) {
    const auto& r = runs[k];
    const auto classes = classes_of(r);
    body += fmt::format("<section class=\"run\" id=\"run-{}\"><h2>{}</h2>\n", k, esc(r.label));
    body += fmt::format("<p>run dir <code>{}</code>, recipe <code>{}</code>, device {}, started {}{}</p>\n", esc(r.dir),
                        esc(r.info.value("recipe", r.final.value("recipe", ""))), esc(r.info.value("device", "-")),
                        esc(r.info.value("started", "-")), r.info.contains("ended") ? ", ended " + esc(r.info["ended"].get<std::string>()) : "");
    body += fmt::format("<p>status <b class=\"status-{}\" id=\"status-{}\">{}</b>; {} steps in {} ({:.0f} images/s median)</p>\n",
                        esc(r.info.value("status", "")), k, esc(status_line(r)), r.info.value("step", r.final.value("steps", std::int64_t{0})),
                        duration(run_seconds(r)), std::isfinite(median_speed(r)) ? median_speed(r) : 0.0);
    if (r.info.contains("error")) body += "<p class=\"error\" id=\"error-" + std::to_string(k) + "\">" + esc(r.info["error"].get<std::string>()) + "</p>\n";
    if (!r.epochs.empty()) {
      body += "<details><summary>Epochs</summary><table class=\"grid\"><tr><th>epoch</th><th>step</th><th>seconds</th><th>lr</th>";
      std::vector<std::string> keys;
      for (const auto& e : r.epochs)
        for (const auto& [key, v] : e.items())
          if ((key.rfind("train/", 0) == 0 || key.rfind("val/", 0) == 0) && std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
      std::sort(keys.begin(), keys.end());
      for (const auto& key : keys) body += "<th>" + esc(key) + "</th>";
      body += "</tr>";
      for (const auto& e : r.epochs) {
        body += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>", e.value("epoch", std::int64_t{0}), e.value("step", std::int64_t{0}),
                            num(e.value("epoch_seconds", json()), "{:.1f}"), num(e.value("lr", json())));
        for (const auto& key : keys)
          body += "<td>" + (e.contains(key) ? (key.find("top") != std::string::npos ? pct(e[key]) : num(e[key])) : "") + "</td>";
        body += "</tr>";
      }
      body += "</table></details>\n";
    }
    if (const json* e = shown_eval(r)) {
      const std::string split = e->value("split", "");
      body += fmt::format("<h3>Confusion matrix: {} split, {} samples{}</h3>\n", esc(split), e->value("samples", std::int64_t{0}),
                          split == "val" ? fmt::format(" (validation after epoch {})", e->value("epoch", std::int64_t{0})) : "");
      body += confusion_html(*e, classes, k);
      body += "<h3>Per-class accuracy</h3>\n";
      if (e->contains("per_class") && e->at("per_class")["correct"].size() <= 100) {
        json labels = json::array(), values = json::array();
        const auto& correct = (*e)["per_class"]["correct"];
        const auto& total = (*e)["per_class"]["total"];
        for (std::size_t i = 0; i < correct.size(); ++i) {
          labels.push_back(class_name(classes, static_cast<std::int64_t>(i)));
          const auto t = total[i].get<std::int64_t>();
          values.push_back(t ? 100.0 * correct[i].get<double>() / static_cast<double>(t) : 0.0);
        }
        const std::string id = "chart-per-class-" + std::to_string(k);
        charts.push_back({{"id", id}, {"type", "bar"}, {"title", "Per-class accuracy (" + split + ")"}, {"ylabel", "accuracy %"},
                          {"labels", labels}, {"datasets", json::array({{{"label", r.label}, {"data", values}, {"color", palette[0]}}})}});
        body += fmt::format("<div class=\"chart\"><canvas id=\"{}\"></canvas></div>\n", id);
      }
      body += per_class_html(*e, classes, k);
      body += "<h3>Most confidently misclassified (" + esc(split) + ")</h3>\n" + misclassified_html(*e, classes);
    } else {
      body += "<p>No evaluation yet (no validation split, or no epoch done).</p>\n";
    }
    body += "<h3>Checkpoints</h3>\n" + checkpoints_html(r);
    body += "<h3>Model</h3>\n" + (r.info.contains("model") ? model_html(r.info["model"]) : std::string("<p>Not recorded.</p>\n"));
    if (!r.report_text.empty()) body += "<details><summary>report.txt</summary><pre>" + esc(r.report_text) + "</pre></details>\n";
    body += "<details><summary>Resolved recipe</summary><pre>" + esc(r.recipe) + "</pre></details>\n</section>\n";
  }

  std::string title = runs.size() == 1 ? runs[0].label : std::to_string(runs.size()) + " runs";
  std::string page = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>graft report: " + esc(title) + "</title>\n";
  // first of all: every script error is kept, for people and for the browser tests
  page += "<script>window.graftErrors=[];window.addEventListener('error',function(e){graftErrors.push(String(e.message));"
          "document.documentElement.dataset.errors=graftErrors.join(' | ');});</script>\n";
  page += std::string("<style>") + style + "</style>\n";
  if (have_chartjs) page += "<script>" + script_safe(chartjs_source()) + "</script>\n";
  page += "</head><body>\n<h1>graft report: " + esc(title) + "</h1>\n" + body;
  page += "<script type=\"application/json\" id=\"graft-data\">" + script_safe(json{{"charts", charts}}.dump()) + "</script>\n";
  page += std::string("<script>") + script + "</script>\n</body></html>\n";
  return page;
}

void write_report(const std::vector<std::string>& run_dirs, const std::string& out) {
  const std::string page = render_report(run_dirs);
  const fs::path target(out);
  const fs::path temp = target.parent_path() / ("." + target.filename().string() + ".tmp");
  {
    std::ofstream f(temp, std::ios::binary);
    f << page;
    if (!f.flush()) {
      std::error_code ec;
      fs::remove(temp, ec);
      throw Error::usage(out + ": cannot write");
    }
  }
  fs::rename(temp, target);
}

}  // namespace graft
