// Learning-rate scheduler plugins, with the semantics of Python's torch.optim.lr_scheduler:
// a schedule is advanced by one "scheduler step" after every epoch or after every
// optimizer step (the recipe's `interval:`), and `count` is Python's `last_epoch` (0 at
// the start, before any step).
//
// A schedule is a closed-form function of (initial lr of a parameter group, count), plus
// what it observed (reduce_on_plateau): so parameter groups added during training
// (gradual unfreezing) follow the same schedule, and a resumed run continues exactly.
//
//   class Exponential : public graft::Scheduler {
//     double lr(double base, std::int64_t count) const override { return base * std::pow(gamma_, count); }
//   };
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "graft/plugin.h"
#include "graft/state.h"

namespace graft {

/// What a schedule knows about the run, given before its first use.
struct ScheduleInfo {
  std::int64_t total = 0;            ///< scheduler steps in the whole run (epochs or optimizer steps)
  std::int64_t steps_per_epoch = 0;  ///< optimizer steps per epoch
  std::int64_t epochs = 0;
  bool per_step = false;             ///< advanced after every optimizer step (else every epoch)
};

/// What observe() accumulated (reduce_on_plateau's best and patience) goes into checkpoints
/// through save_state() / load_state() (Stateful); graft keeps `count` itself.
class Scheduler : public Stateful {
 public:
  /// "epoch" or "step": the interval used when the recipe does not say.
  virtual std::string default_interval() const { return "epoch"; }
  virtual void setup(const ScheduleInfo& info) { (void)info; }
  /// The lr of a group whose initial lr is `base_lr`, after `count` scheduler steps.
  virtual double lr(double base_lr, std::int64_t count) const = 0;
  /// The momentum (SGD momentum, Adam beta1) of a group whose initial momentum is `base`,
  /// after `count` steps; nullopt leaves momentum alone (all but one_cycle).
  virtual std::optional<double> momentum(double base, std::int64_t count) const {
    (void)base;
    (void)count;
    return std::nullopt;
  }
  /// The metric a schedule watches ("val/loss"), or "" for none. When set, observe() is
  /// called with its value at every scheduler step, before lr() is asked.
  virtual std::string monitor() const { return {}; }
  virtual void observe(double value) { (void)value; }
};

template <> struct ProductOf<Kind::scheduler> { using type = std::shared_ptr<Scheduler>; };

}  // namespace graft
