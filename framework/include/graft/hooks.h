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
};

/// Every stage a no-op: a hook overrides the ones it needs. Its state, if any, goes into
/// checkpoints through save_state() / load_state() (Stateful); load_state() is called on
/// resume before on_fit_start().
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
