// Save points: asks every checkpoint strategy which files it wants now, writes the
// checkpoint once under all of them (atomically, through the run dir) and applies the
// strategies' retention.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>
#include <string>

#include <ATen/core/ivalue.h>

#include "callbacks.h"
#include "group_sync.h"
#include "train/run_output.h"

namespace graft::train {

class CheckpointSaver {
 public:
  /// `writes`: the run has a run dir (in a multi-process run: rank 0's; the others have
  /// none but take part in every save point).
  CheckpointSaver(RunOutput& out, Callbacks& callbacks, const GroupSync& sync, bool writes)
      : out_(out), callbacks_(callbacks), sync_(sync), writes_(writes) {}

  /// Writes `make()` under every name the strategies ask for at `at` (nothing when none
  /// does, or the run writes no run dir). Returns the path written, or "". In a
  /// multi-process run every rank calls it at the same points: the ranks agree on the
  /// files and on a stop (GroupSync::agree), every rank calls `make` (it may hold a
  /// collective), rank 0 writes, and every rank learns whether it could.
  std::string save(TrainContext& ctx, SavePoint at, const std::function<c10::IValue()>& make);

 private:
  RunOutput& out_;
  Callbacks& callbacks_;
  const GroupSync& sync_;
  bool writes_;
  std::int64_t last_step_ = -1;        ///< the step, save point and files of the last write
  SavePoint last_at_ = SavePoint::step;
  std::vector<std::string> last_names_;
};

}  // namespace graft::train
