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
#include <vector>

#include <ATen/core/Dict.h>
#include <ATen/core/ivalue.h>
#include <nlohmann/json.hpp>

#include "graft/host/logging.h"

namespace graft {

struct FitResult;
namespace train {
class RunReport;
}

/// The checkpoints of a checkpoints dir (*.pth, not temp files), newest first
/// (modification time), as paths.
std::vector<std::string> checkpoint_files(const std::string& checkpoints_dir);

class RunOutput {
 public:
  /// `resume_step` >= 0: a resumed run; its logs go on (metrics.jsonl keeps the records up
  /// to that step, train.log is appended to). Otherwise both start empty.
  RunOutput(std::string dir, std::optional<bool> progress, std::int64_t resume_step = -1);
  ~RunOutput();

  const std::string& dir() const { return dir_; }
  /// Writes `name` in the run dir (temp file, then rename).
  void write_text(const std::string& name, const std::string& text) const;
  /// One line of metrics.jsonl (flushed).
  void metrics_line(const nlohmann::json& record);
  /// A periodic training line: logged when there is no progress bar, else to train.log only.
  /// (train.log gets every line graft logs while this object lives.)
  void log_step(const std::string& line);
  /// A line to train.log alone (not to stderr), e.g. the error that ends the run.
  void log_to_file(log::Level level, const std::string& line);
  void progress(std::int64_t epoch, std::int64_t epochs, std::int64_t batch, std::int64_t batches, double loss,
                double img_per_s, double eta_seconds);
  /// Clears the progress bar line (before other output).
  void end_progress();
  /// Writes `state` to checkpoints/<name> for every name, atomically: the file is written
  /// once (temp file, fsync, rename, fsync dir), further names are hard links to it, each
  /// put in place by a rename. Nothing is overwritten in place. Returns the paths. On a
  /// failure (a full disk) the temp file is removed and the error names what is intact.
  std::vector<std::string> write_checkpoint(const std::vector<std::string>& names, const c10::impl::GenericDict& state) const;
  /// checkpoints/*.pth, oldest first (modification time, then name).
  std::vector<std::string> list_checkpoints() const;
  void remove_checkpoint(const std::string& name) const;
  std::string checkpoints_dir() const;
  /// report.txt and report.json, and the summary on stderr.
  void final_report(const std::string& recipe, const FitResult& result) const;
  /// run.json and report.html (graft/host/report.h), or null without a run dir.
  train::RunReport* report() const { return report_.get(); }

 private:
  std::string dir_;
  bool bar_ = false;
  bool bar_shown_ = false;
  std::chrono::steady_clock::time_point last_bar_{};
  std::ofstream metrics_;
  std::unique_ptr<LogFile> log_file_;  ///< train.log, for the run's lifetime
  std::unique_ptr<train::RunReport> report_;  ///< stopped before train.log closes
};

}  // namespace graft
