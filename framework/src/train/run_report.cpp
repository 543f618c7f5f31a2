#include "train/run_report.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <numeric>

#include <fmt/format.h>

#include "graft/host/png.h"
#include "graft/host/report.h"
#include "graft/host/summary.h"
#include "graft/log.h"
#include "graft/model.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace graft::train {

namespace {

// A confusion matrix of more classes is not drawn: its largest confusions are listed.
constexpr std::size_t max_matrix_classes = 100;
// Thumbnails are at most this many pixels on a side (nearest-neighbour shrinking).
constexpr std::int64_t thumb_side = 96;

std::string now_text() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  return buf;
}

// The dataset's image as a small 8-bit gray or RGB picture.
std::string thumbnail(torch::Tensor image) {
  if (image.dim() == 2) image = image.unsqueeze(0);
  if (image.dim() != 3) return {};
  if (image.scalar_type() != torch::kUInt8) {
    auto f = image.to(torch::kFloat);
    const auto lo = f.min(), hi = f.max();
    image = ((f - lo) / (hi - lo).clamp_min(1e-12) * 255).round().to(torch::kUInt8);
  }
  if (image.size(0) != 1 && image.size(0) != 3) image = image.slice(0, 0, 1);
  const auto side = std::max(image.size(1), image.size(2));
  if (side > thumb_side) {
    const double s = static_cast<double>(thumb_side) / static_cast<double>(side);
    const auto h = std::max<std::int64_t>(1, static_cast<std::int64_t>(static_cast<double>(image.size(1)) * s));
    const auto w = std::max<std::int64_t>(1, static_cast<std::int64_t>(static_cast<double>(image.size(2)) * s));
    image = torch::nn::functional::interpolate(image.unsqueeze(0).to(torch::kFloat),
                                               torch::nn::functional::InterpolateFuncOptions().size(std::vector<std::int64_t>{h, w}).mode(torch::kArea))
                .squeeze(0).round().clamp(0, 255).to(torch::kUInt8);
  }
  return png_data_uri(image);
}

}  // namespace

json evaluation_json(const PassResult& r, const Dataset& data, const std::vector<std::string>& classes, std::int64_t epoch,
                     std::size_t keep) {
  std::size_t k = classes.size();
  for (auto t : r.targets) k = std::max(k, static_cast<std::size_t>(t + 1));
  for (auto p : r.predicted) k = std::max(k, static_cast<std::size_t>(p + 1));
  json e = {{"split", r.split}, {"epoch", epoch}, {"samples", r.samples}, {"metrics", r.metrics}};
  std::vector<std::int64_t> correct(k, 0), total(k, 0);
  std::vector<std::vector<std::int64_t>> matrix;
  const bool full = k <= max_matrix_classes;
  if (full) matrix.assign(k, std::vector<std::int64_t>(k, 0));
  std::map<std::pair<std::int64_t, std::int64_t>, std::int64_t> pairs;
  for (std::size_t i = 0; i < r.targets.size(); ++i) {
    const auto t = static_cast<std::size_t>(r.targets[i]), p = static_cast<std::size_t>(r.predicted[i]);
    total[t] += 1;
    correct[t] += t == p;
    if (full) matrix[t][p] += 1;
    else if (t != p) pairs[{r.targets[i], r.predicted[i]}] += 1;
  }
  if (full) e["confusion"] = matrix;
  else {
    std::vector<std::pair<std::int64_t, std::pair<std::int64_t, std::int64_t>>> top;
    for (const auto& [tp, n] : pairs) top.emplace_back(n, tp);
    std::sort(top.rbegin(), top.rend());
    json list = json::array();
    for (std::size_t i = 0; i < top.size() && i < 30; ++i)
      list.push_back({{"target", top[i].second.first}, {"predicted", top[i].second.second}, {"count", top[i].first}});
    e["top_confusions"] = list;
  }
  e["per_class"] = {{"correct", correct}, {"total", total}};
  // the most confident mistakes
  std::vector<std::size_t> wrong;
  for (std::size_t i = 0; i < r.targets.size(); ++i)
    if (r.targets[i] != r.predicted[i]) wrong.push_back(i);
  const std::size_t n = std::min(keep, wrong.size());
  std::partial_sort(wrong.begin(), wrong.begin() + static_cast<std::ptrdiff_t>(n), wrong.end(),
                    [&](std::size_t a, std::size_t b) { return r.confidence[a] > r.confidence[b]; });
  json miss = json::array();
  for (std::size_t j = 0; j < n; ++j) {
    const std::size_t i = wrong[j];
    std::string image;
    try {
      image = thumbnail(data.get(r.indices[i]).input);
    } catch (const std::exception& ex) {
      log::debug("report: no thumbnail of sample {}: {}", r.indices[i], ex.what());
    }
    miss.push_back({{"index", r.indices[i]}, {"target", r.targets[i]}, {"predicted", r.predicted[i]},
                    {"confidence", r.confidence[i]}, {"image", image}});
  }
  e["misclassified"] = miss;
  return e;
}

RunReport::RunReport(std::string dir, bool resumed) : dir_(std::move(dir)) {
  state_ = {{"format", 1}, {"status", "running"}, {"checkpoints", json::object()}, {"eval", json::object()}};
  if (resumed) {
    try {
      std::ifstream in(fs::path(dir_) / "run.json");
      const json before = json::parse(in);
      for (const char* key : {"checkpoints", "eval", "started"})
        if (before.contains(key)) state_[key] = before[key];
    } catch (const std::exception&) {  // none, or unreadable: the report starts again
    }
  }
  if (!state_.contains("started")) state_["started"] = now_text();
  worker_ = std::thread([this] { loop(); });
}

RunReport::~RunReport() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  worker_.join();
}

void RunReport::started(const std::string& recipe, std::int64_t planned_epochs, const std::vector<std::string>& classes,
                        const std::string& device) {
  state_["recipe"] = recipe;
  state_["epochs"] = planned_epochs;
  state_["classes"] = classes;
  state_["device"] = device;
  request();
}

void RunReport::model(BuiltModel& built) {
  json m = {{"backbone", built.backbone}, {"input_shape", built.input_shape}, {"changes", built.changes}};
  const ParamCount count = count_parameters(*built.module.ptr());
  m["params"] = {{"total", count.total}, {"trainable", count.trainable}};
  try {
    json rows = json::array();
    for (const auto& r : summarize(built.module, built.input_shape, built.origin))
      rows.push_back({{"path", r.path}, {"type", r.type}, {"depth", r.depth}, {"output_shape", r.output_shape},
                      {"params", r.params}, {"trainable", r.trainable}, {"origin", r.origin}});
    m["summary"] = rows;
  } catch (const std::exception& e) {
    log::debug("report: no model summary: {}", e.what());
  }
  if (built.weights) {
    const auto& w = *built.weights;
    json mismatched = json::array();
    for (const auto& x : w.mismatched) mismatched.push_back({{"key", x.key}, {"model_shape", x.model_shape}, {"file_shape", x.file_shape}});
    m["weights"] = {{"file", w.file},         {"summary", w.summary()},   {"loaded", w.loaded.size()},
                    {"missing", w.missing},   {"unexpected", w.unexpected}, {"mismatched", mismatched}};
  }
  state_["model"] = m;
}

void RunReport::evaluated(const std::string& split, json evaluation) { state_["eval"][split] = std::move(evaluation); }

void RunReport::checkpoint(const std::vector<std::string>& names, std::int64_t epoch, std::int64_t step,
                           const std::map<std::string, double>& metrics) {
  for (const auto& n : names) state_["checkpoints"][n] = {{"epoch", epoch}, {"step", step}, {"metrics", metrics}};
}

void RunReport::epoch_end(std::int64_t epoch, std::int64_t step, double seconds) {
  state_["epoch"] = epoch + 1;
  state_["step"] = step;
  state_["seconds"] = seconds;
  request();
}

void RunReport::end(const std::string& status, const std::string& stop_reason, const std::string& error, std::int64_t step,
                    double seconds) {
  state_["status"] = status;
  state_["stop_reason"] = stop_reason;
  if (!error.empty()) state_["error"] = error;
  state_["step"] = step;
  state_["seconds"] = seconds;
  state_["ended"] = now_text();
  {
    // the background writer finishes what it does, and writes nothing more
    std::unique_lock<std::mutex> lock(mutex_);
    pending_.reset();
    wake_.wait(lock, [&] { return !busy_; });
  }
  write(state_);
}

void RunReport::request() {
  state_["updated"] = now_text();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_ = std::make_unique<json>(state_);
  }
  wake_.notify_all();
}

void RunReport::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || pending_; });
    if (!pending_) return;  // stopped with nothing to write
    const auto snapshot = std::move(pending_);
    busy_ = true;
    lock.unlock();
    write(*snapshot);
    lock.lock();
    busy_ = false;
    wake_.notify_all();
    if (stop_) return;
  }
}

void RunReport::write(const json& snapshot) const {
  const auto t0 = std::chrono::steady_clock::now();
  try {
    const fs::path dir(dir_);
    {
      std::ofstream out(dir / ".run.json.tmp");
      out << snapshot.dump(1) << "\n";
      if (!out.flush()) throw std::runtime_error("cannot write " + (dir / ".run.json.tmp").string());
    }
    fs::rename(dir / ".run.json.tmp", dir / "run.json");
    write_report({dir_}, (dir / "report.html").string());
    log::debug("report.html written in {:.1f} ms", std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove(fs::path(dir_) / ".run.json.tmp", ec);
    log::warn("{}/report.html not written: {}", dir_, e.what());
  }
}

}  // namespace graft::train
