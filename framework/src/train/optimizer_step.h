// From a batch's loss to an optimizer step: backward (scaled for gradient accumulation
// and fp16 loss scaling), gradients gathered from every worker, and, when a group of
// `accumulate` batches is complete: unscale (skip on overflow), clip, step, clear.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "callbacks.h"
#include "execution.h"
#include "graft/optim.h"
#include "loss_scaler.h"
#include "settings.h"
#include "trainable_set.h"

namespace graft::train {

class OptimizerStep {
 public:
  OptimizerStep(const Settings& settings, std::int64_t batches_per_epoch, Execution& execution, LossScaler& scaler,
                Callbacks& callbacks);

  /// A new epoch: no gradient held, no group begun.
  void epoch_start(Optimizer& optimizer);
  /// Backward of ctx.loss for batch `batch` of the epoch; hooks see on_after_backward.
  /// Returns true when the batch completes an accumulation group (step() is due).
  bool backward(TrainContext& ctx, std::int64_t batch);
  /// The optimizer step of a complete group; ctx.step counts it (also a step skipped for
  /// an fp16 overflow, as GradScaler). Hooks see on_before / on_after_optimizer_step.
  void step(TrainContext& ctx, TrainableSet& trainable);
  /// Whether the epoch's batches so far end on a complete group.
  bool at_group_end() const { return in_group_ == 0; }

 private:
  const Settings& settings_;
  std::int64_t batches_;
  Execution& execution_;
  LossScaler& scaler_;
  Callbacks& callbacks_;
  std::int64_t in_group_ = 0;
};

/// Every parameter the optimizer updates.
std::vector<torch::Tensor> all_params(const Optimizer& optimizer);

}  // namespace graft::train
