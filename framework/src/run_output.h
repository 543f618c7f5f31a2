// What a run writes and shows: the run dir (resolved recipe, train.log, metrics.jsonl,
// checkpoints/, report.txt, report.json), a progress bar on a terminal, periodic log
// lines otherwise. An empty dir writes nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include <ATen/core/Dict.h>
#include <ATen/core/ivalue.h>
#include <nlohmann/json.hpp>

namespace spdlog::sinks {
class sink;
}

namespace graft {

struct FitResult;

class RunOutput {
 public:
  RunOutput(std::string dir, std::optional<bool> progress);
  ~RunOutput();

  const std::string& dir() const { return dir_; }
  /// Writes `name` in the run dir (temp file, then rename).
  void write_text(const std::string& name, const std::string& text) const;
  /// One line of metrics.jsonl (flushed).
  void metrics_line(const nlohmann::json& record);
  /// A periodic training line: logged when there is no progress bar, else to train.log only.
  void log_step(const std::string& line);
  void progress(std::int64_t epoch, std::int64_t epochs, std::int64_t batch, std::int64_t batches, double loss,
                double img_per_s, double eta_seconds);
  /// Clears the progress bar line (before other output).
  void end_progress();
  /// Writes checkpoints/<name> atomically; returns its path.
  std::string write_checkpoint(const std::string& name, const c10::impl::GenericDict& state) const;
  /// report.txt and report.json, and the summary on stderr.
  void final_report(const std::string& recipe, const FitResult& result) const;

 private:
  std::string dir_;
  bool bar_ = false;
  bool bar_shown_ = false;
  std::chrono::steady_clock::time_point last_bar_{};
  std::ofstream metrics_;
  std::shared_ptr<spdlog::sinks::sink> file_sink_;
};

}  // namespace graft
