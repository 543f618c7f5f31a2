// How a training or evaluation step runs across devices: one interface, one
// implementation per way (a single device; DataParallel over the CUDA devices of one
// process; one rank of a multi-process group, gradients all-reduced over c10d).
#pragma once

#include <memory>
#include <vector>
#include <string>

#include <torch/nn/modules/container/any.h>
#include <torch/types.h>

#include "settings.h"

namespace graft::dist {
class Group;
}

namespace graft::train {

/// Autocast (trainer.amp) for the calling thread while alive.
class AutocastScope {
 public:
  explicit AutocastScope(const Amp& amp);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool on_;
};

class Execution {
 public:
  virtual ~Execution() = default;
  /// A batch tensor on the main device (channels-last when asked for).
  virtual torch::Tensor to_device(const torch::Tensor& t) const = 0;
  /// The model's output for `x` (under autocast when trainer.amp is set), on the main device.
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  /// Before backward: `sync` when this backward completes an accumulation group (the
  /// gradients are due for the optimizer step; micro-steps before it keep theirs local).
  virtual void before_backward(bool sync) { (void)sync; }
  /// After backward: the gradients of every worker are in the model's parameters.
  virtual void after_backward() {}
  /// After the parameters changed (an optimizer step, loaded weights, unfreezing): every
  /// worker sees the model's values and requires_grad flags.
  virtual void after_update() {}
  /// After weights were loaded (a resume): every worker and rank holds the first's.
  virtual void after_load() { after_update(); }
  /// Seconds spent waiting for other workers' gradients (the part not hidden behind
  /// backward), over the run so far.
  virtual double waited_seconds() const { return 0; }
  /// One line for the log ("cpu", "cuda:0 (DataParallel over 2 devices)").
  virtual std::string describe() const = 0;
};

/// The execution the settings ask for, over `module` (already on settings.devices.main);
/// with a `group` of more than one rank: this rank's part of a multi-process run.
std::unique_ptr<Execution> make_execution(torch::nn::AnyModule module, const Settings& settings,
                                          std::shared_ptr<dist::Group> group = nullptr);

}  // namespace graft::train
