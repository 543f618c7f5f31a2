#include "step_logger.h"

#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "graft/log.h"
#include "train/run_report.h"

namespace graft::train {

namespace {
double since(StepLogger::Clock::time_point t) {
  return std::chrono::duration<double>(StepLogger::Clock::now() - t).count();
}
}  // namespace

std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--";
  const auto t = static_cast<std::int64_t>(s + 0.5);
  return t >= 3600 ? fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60) : fmt::format("{:02}:{:02}", t / 60, t % 60);
}

StepLogger::StepLogger(RunOutput& out, std::int64_t log_every, std::int64_t planned_epochs, double seconds_before,
                       Clock::time_point started)
    : out_(out), log_every_(log_every), planned_epochs_(planned_epochs), seconds_before_(seconds_before), started_(started) {}

double StepLogger::seconds() const { return seconds_before_ + since(started_); }

void StepLogger::epoch_start(std::int64_t first_batch) {
  epoch_started_ = window_started_ = Clock::now();
  window_samples_ = epoch_samples_ = 0;
  first_batch_ = first_batch;
}

void StepLogger::batch(std::int64_t samples) {
  window_samples_ += samples;
  epoch_samples_ += samples;
}

void StepLogger::step(std::int64_t epoch, std::int64_t step, double loss, double lr) {
  if (step % log_every_ != 0) return;
  const double secs = since(window_started_);
  const double rate = secs > 0 ? static_cast<double>(window_samples_) / secs : 0.0;
  out_.metrics_line({{"epoch", epoch + 1}, {"step", step}, {"loss", loss}, {"lr", lr}, {"img_per_s", rate}, {"time", seconds()}});
  out_.log_step(fmt::format("epoch {}/{} step {} loss {:.4f} lr {:.3g} {:.0f} img/s", epoch + 1, planned_epochs_, step, loss,
                            lr, rate));
  window_started_ = Clock::now();
  window_samples_ = 0;
}

void StepLogger::progress(std::int64_t epoch, std::int64_t batch, std::int64_t batches, double running_loss) {
  const double elapsed = since(epoch_started_);
  const std::int64_t done = batch + 1 - first_batch_;
  out_.progress(epoch + 1, planned_epochs_, batch + 1, batches, running_loss,
                static_cast<double>(epoch_samples_) / std::max(elapsed, 1e-9),
                elapsed / static_cast<double>(done) * static_cast<double>(batches - batch - 1));
}

void StepLogger::epoch_end(std::int64_t epoch, std::int64_t step, double lr, const std::map<std::string, double>& m) {
  nlohmann::json rec = {{"epoch", epoch + 1}, {"step", step}, {"time", seconds()}, {"lr", lr}, {"epoch_seconds", since(epoch_started_)}};
  for (const auto& [k, v] : m) rec[k] = v;
  out_.metrics_line(rec);
  if (auto* report = out_.report()) report->epoch_end(epoch, step, seconds());
  auto get = [&](const char* k) { return m.count(k) ? m.at(k) : 0.0; };
  std::string line = fmt::format("epoch {}/{}: train loss {:.4f}", epoch + 1, planned_epochs_, get("train/loss"));
  if (m.count("train/top1")) line += fmt::format(" top1 {:.2f}%", 100 * get("train/top1"));
  if (m.count("val/loss")) line += fmt::format(", val loss {:.4f}", get("val/loss"));
  if (m.count("val/top1")) line += fmt::format(" top1 {:.2f}%", 100 * get("val/top1"));
  line += fmt::format(" ({})", fmt_duration(since(epoch_started_)));
  log::info("{}", line);
}

}  // namespace graft::train
