// What a run reports as it goes: a metrics.jsonl record and a log line every `log_every`
// optimizer steps (with the throughput of that window), the progress bar after every
// batch, and an epoch's summary record and line.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "train/run_output.h"

namespace graft::train {

class StepLogger {
 public:
  using Clock = std::chrono::steady_clock;

  /// `seconds_before`: training time of the runs this one resumes; `started`: when this
  /// run started (its set-up counts as training time).
  StepLogger(RunOutput& out, std::int64_t log_every, std::int64_t planned_epochs, double seconds_before,
             Clock::time_point started);

  /// Training time of the whole run, resumes included.
  double seconds() const;
  void epoch_start(std::int64_t first_batch);
  /// A batch of `samples` is done (before the step, if one ends here).
  void batch(std::int64_t samples);
  /// An optimizer step is done: a record and a line every log_every steps.
  void step(std::int64_t epoch, std::int64_t step, double loss, double lr);
  /// The progress bar after batch `batch` (0-based) of `batches`.
  void progress(std::int64_t epoch, std::int64_t batch, std::int64_t batches, double running_loss);
  /// The epoch's summary: every metric, a metrics.jsonl record and one log line.
  void epoch_end(std::int64_t epoch, std::int64_t step, double lr, const std::map<std::string, double>& metrics);
  void end_progress() { out_.end_progress(); }
  RunOutput& output() { return out_; }

 private:
  RunOutput& out_;
  std::int64_t log_every_, planned_epochs_;
  double seconds_before_;
  Clock::time_point started_, epoch_started_, window_started_;
  std::int64_t window_samples_ = 0, epoch_samples_ = 0, first_batch_ = 0;
};

/// "mm:ss" or "h:mm:ss".
std::string fmt_duration(double seconds);

}  // namespace graft::train
