// Save points: asks every checkpoint strategy which files it wants now, writes the
// checkpoint once under all of them (atomically, through the run dir) and applies the
// strategies' retention.
#pragma once

#include <functional>
#include <string>

#include <ATen/core/ivalue.h>

#include "callbacks.h"
#include "train/run_output.h"

namespace graft::train {

class CheckpointSaver {
 public:
  CheckpointSaver(RunOutput& out, Callbacks& callbacks) : out_(out), callbacks_(callbacks) {}

  /// Writes `make()` under every name the strategies ask for at `at` (nothing when none
  /// does, or the run writes no run dir). Returns the path written, or "".
  std::string save(TrainContext& ctx, SavePoint at, const std::function<c10::IValue()>& make);

 private:
  RunOutput& out_;
  Callbacks& callbacks_;
};

}  // namespace graft::train
