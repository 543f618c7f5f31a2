// The trainer's side of the run report: run.json (what a report shows that the other files
// of the run dir do not: status, model summary and loading report, the latest validation's
// and the test's confusion matrix and misclassified samples, the checkpoints' metrics) and
// report.html, rewritten at every epoch end by a background thread so training does not
// wait for it, and once more, in the caller's thread, when the run ends.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "graft/data.h"
#include "graft/host/build.h"
#include "graft/host/trainer.h"

namespace graft::train {

/// The evaluation of a pass as the report shows it: metrics, the confusion matrix, per-class
/// counts and the `keep` most confidently misclassified samples with their thumbnails
/// (the dataset's images before transforms, as PNG data URIs).
nlohmann::json evaluation_json(const PassResult& r, const Dataset& data, const std::vector<std::string>& classes,
                               std::int64_t epoch, std::size_t keep = 12);

class RunReport {
 public:
  /// `resumed`: the run goes on in `dir`, whose run.json keeps its evaluations and checkpoints.
  RunReport(std::string dir, bool resumed);
  ~RunReport();
  RunReport(const RunReport&) = delete;
  RunReport& operator=(const RunReport&) = delete;

  void started(const std::string& recipe, std::int64_t planned_epochs, const std::vector<std::string>& classes,
               const std::string& device);
  /// The model summary (one dry forward of one sample) and the loading report.
  void model(BuiltModel& built);
  void evaluated(const std::string& split, nlohmann::json evaluation);
  void checkpoint(const std::vector<std::string>& names, std::int64_t epoch, std::int64_t step,
                  const std::map<std::string, double>& metrics);
  /// An epoch is done: run.json and report.html are rewritten in the background (a write
  /// still going on is not waited for: the next one carries this epoch too).
  void epoch_end(std::int64_t epoch, std::int64_t step, double seconds);
  /// The run ended ("finished", "interrupted" or "failed"): the last write, in this thread.
  void end(const std::string& status, const std::string& stop_reason, const std::string& error, std::int64_t step,
           double seconds);

 private:
  void request();
  void write(const nlohmann::json& snapshot) const;
  void loop();

  std::string dir_;
  nlohmann::json state_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::unique_ptr<nlohmann::json> pending_;
  bool busy_ = false, stop_ = false;
  std::thread worker_;
};

}  // namespace graft::train
