// Trainer hooks: plugins called at every stage of a run. A hook reads metrics, writes to
// the run dir, changes learning rates, requests a stop, and keeps its own state in
// checkpoints (save_state / load_state, graft/state.h).
//
//   class PrintLoss : public graft::Hook {
//     void on_batch_end(graft::TrainContext& c) override {
//       if (c.step % 100 == 0) std::cerr << c.step << " " << c.loss_value << "\n";
//     }
//   };
//   GRAFT_PLUGIN(hook, "print_loss", [](const graft::Config&) { return std::make_shared<PrintLoss>(); }, "...");
#pragma once

#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <string>

#include <torch/nn/module.h>

#include "graft/optim.h"
#include "graft/plugin.h"
#include "graft/state.h"

namespace graft {

/// What hooks see of the run, and the few things they may change.
struct TrainContext {
  // Position. `epoch` is 0-based; `step` counts optimizer steps done in the whole run;
  // `batch` is the batch index within the epoch.
  std::int64_t epoch = 0;
  std::int64_t step = 0;
  std::int64_t batch = 0;
  std::int64_t batches_per_epoch = 0;
  std::int64_t max_epochs = 0;
  std::int64_t max_steps = 0;  ///< 0: no limit
  /// True from on_fit_start on when the run goes on from a checkpoint (graft train --resume).
  bool resuming = false;

  torch::nn::Module* model = nullptr;              ///< the model being trained (on its device)
  Optimizer* optimizer = nullptr;                  ///< per-group lr and momentum (graft/optim.h)
  torch::Tensor inputs, targets;                   ///< the current batch (on the device)
  torch::Tensor output;                            ///< the model's output, after forward
  torch::Tensor loss;                              ///< this batch's loss, after forward
  double loss_value = 0;                           ///< loss.item(), after forward

  /// Latest values: "train/loss" (running mean of the epoch), "lr", and after a
  /// validation pass "val/loss", "val/top1", ...
  std::map<std::string, double> metrics;
  std::string run_dir;  ///< "" when the run writes nothing

  /// Ends the run after the current step (the trainer saves and reports as usual).
  void request_stop(std::string reason) {
    stop_requested = true;
    stop_reason = std::move(reason);
  }
  /// Interrupts the run now (a signal): no validation, no test pass; the process exits
  /// with `exit_code` once the checkpoint strategies have saved at this point.
  void request_interrupt(std::string reason, int code) {
    request_stop(std::move(reason));
    exit_code = code;
  }
  bool stop_requested = false;
  std::string stop_reason;
  int exit_code = 0;  ///< non-zero: interrupted (request_interrupt)

  /// Multi-process runs (graft launch, torchrun): this process's rank and the number of
  /// ranks. Every rank runs every hook; only rank 0 has a run_dir (it owns the run's
  /// files). inputs/targets/output/loss are this rank's share of the batch; metrics are
  /// the whole group's at the end of an epoch and of a validation pass. A stop request
  /// or an interrupt on any rank stops every rank at the same step.
  int rank = 0;
  int world = 1;
};

/// Every stage a no-op: a hook overrides the ones it needs. Its state, if any, goes into
/// checkpoints through save_state() / load_state() (Stateful).
///
/// The order of the calls in a run (the trainer's units: train_loop.cpp, optimizer_step.cpp):
///
///   before anything: the dry run (graft check, and graft train first) builds the recipe's
///                          hooks and strategies once, calls none of their stages and
///                          serializes their state, then drops them: a constructor must
///                          have no effect a second instance would undo or repeat
///   on_fit_start           once. On a resume every state is restored before it: weights,
///                          optimizer, scheduler, each hook's load_state(), the metrics'
///                          sums, ctx.step, ctx.metrics, and ctx.epoch / ctx.batch are where
///                          the run goes on (ctx.resuming is true); the RNG is restored after.
///   per epoch:
///     gradual unfreezing for the epoch (freeze schedules), then
///     on_epoch_start       not when a resume goes on in the middle of this epoch
///     per batch:
///       on_batch_start     ctx.inputs, ctx.targets on the device
///       on_after_forward   ctx.output, ctx.loss, ctx.loss_value; training metrics updated after
///       on_after_backward  every batch, accumulation micro-batches included
///       when a step is due (every trainer.accumulate batches): unscale (fp16), clip, then
///       on_before_optimizer_step   skipped with the step on an fp16 overflow
///       on_after_optimizer_step    ctx.step already counts this step; a per-step scheduler
///                                  (interval: step) advances after it
///       on_batch_end       ctx.metrics["train/loss"] (the epoch's running mean) and "lr";
///                          then the checkpoint strategies may save (at the end of a step)
///     validation, every trainer.val_every epochs:
///       on_validation_start, the pass, on_validation_end   ("val/..." metrics known)
///     on_epoch_end         metrics complete, BEFORE a per-epoch scheduler steps (ctx's "lr"
///                          is still this epoch's); then the epoch's checkpoint is saved
///   the test pass, then
///   on_fit_end             not when the run was interrupted (a signal) or failed
///   on_exception           instead, when the run fails: every hook sees the error, then a
///                          checkpoint of the failing run is attempted and the error rethrown
///
/// A stop requested in any call ends the run after the current step; strategies save as at
/// an epoch's or a step's end.
class Hook : public Stateful {
 public:
  virtual void on_fit_start(TrainContext&) {}
  virtual void on_fit_end(TrainContext&) {}
  virtual void on_epoch_start(TrainContext&) {}
  virtual void on_epoch_end(TrainContext&) {}  ///< after validation, metrics complete
  virtual void on_batch_start(TrainContext&) {}
  virtual void on_after_forward(TrainContext&) {}   ///< output and loss known
  virtual void on_after_backward(TrainContext&) {}  ///< gradients visible, before clipping and the step
  virtual void on_before_optimizer_step(TrainContext&) {}  ///< after clipping
  virtual void on_after_optimizer_step(TrainContext&) {}
  virtual void on_batch_end(TrainContext&) {}
  virtual void on_validation_start(TrainContext&) {}
  virtual void on_validation_end(TrainContext&) {}  ///< "val/..." metrics known
  /// The run is failing with `error` (rethrown after every hook has seen it).
  virtual void on_exception(TrainContext&, const std::exception& error) { (void)error; }
};

template <> struct ProductOf<Kind::hook> { using type = std::shared_ptr<Hook>; };

}  // namespace graft
