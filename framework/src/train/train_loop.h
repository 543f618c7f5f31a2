// The epochs and batches of a run: forward, loss, metrics, the optimizer step, hooks at
// every stage, validation, the schedule, and the save points, from a start position (a
// resumed run starts mid-epoch) to the end, a stop or an interrupt.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "callbacks.h"
#include "checkpoint_saver.h"
#include "graft/host/loader.h"
#include "graft/metrics.h"
#include "optimizer_step.h"
#include "schedule_driver.h"
#include "session.h"
#include "step_logger.h"
#include "train_state.h"
#include "trainable_set.h"

namespace graft::train {

/// How the loop ended.
struct LoopEnd {
  bool interrupted = false;    ///< a strategy asked to exit (a signal): nothing more runs
  std::string stop_reason;     ///< "max_steps", a hook's reason, or "" when the epochs ran out
  std::int64_t epochs = 0;     ///< epochs begun
  std::int64_t end_epoch = 0;  ///< the position the run ends at (the end save point)
  std::int64_t end_batch = 0;
};

struct LoopUnits {
  Session& session;
  TrainableSet& trainable;
  ScheduleDriver& schedule;
  Callbacks& callbacks;
  OptimizerStep& optimizer_step;
  CheckpointSaver& saver;
  StepLogger& logger;
  Loader& loader;
  std::vector<std::shared_ptr<Metric>>& metrics;  ///< training metrics
  TrainContext& ctx;
  EpochSums& sums;
  /// The checkpoint of the run at (epochs completed, batch of the next epoch, save point).
  std::function<c10::IValue(SavePoint, std::int64_t, std::int64_t)> checkpoint;
};

class TrainLoop {
 public:
  TrainLoop(LoopUnits units, std::int64_t planned_epochs) : u_(units), planned_epochs_(planned_epochs) {}

  /// Runs from (start_epoch, start_batch); `resumed`: the state at that position was
  /// restored (a mid-epoch start goes on with the epoch's sums, metrics and hooks).
  /// `start_sample` >= 0: the first epoch goes on from that sample of its order over all
  /// ranks, dealt anew (a checkpoint of another world size or batch size).
  LoopEnd run(std::int64_t start_epoch, std::int64_t start_batch, bool resumed, std::int64_t start_sample = -1);
  /// The path of the last checkpoint written, if any.
  const std::string& last_checkpoint() const { return last_checkpoint_; }
  /// Writes the checkpoint of `at` if a strategy asks for one.
  void save(SavePoint at, std::int64_t epoch, std::int64_t batch);

 private:
  LoopEnd epochs(std::int64_t start_epoch, std::int64_t start_batch, bool resumed, std::int64_t start_sample);
  /// One batch. Returns false when the run must stop after it (stop, max_steps, interrupt).
  bool batch(std::int64_t epoch, std::int64_t b, Batch& data, LoopEnd& end, bool& complete);
  void validate();
  double lr() const;

  LoopUnits u_;
  std::int64_t planned_epochs_;
  std::string last_checkpoint_;
};

}  // namespace graft::train
