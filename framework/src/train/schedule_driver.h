// The recipe's `scheduler:` driven through a run: when it advances (every epoch or every
// optimizer step), what it observes (a monitored metric), and the lr and momentum it sets
// in every optimizer group, groups added by unfreezing included.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graft/optim.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "graft/schedule.h"
#include "graft/state.h"
#include "callbacks.h"
#include "settings.h"
#include "trainable_set.h"

namespace graft::train {

class ScheduleDriver : public Stateful {
 public:
  /// Checks the scheduler's interval and monitor against the run (no scheduler: all no-ops).
  ScheduleDriver(const Recipe& recipe, const Registry& registry, const Settings& settings);

  bool per_step() const { return per_step_; }
  /// What the schedule needs of the run's length; before the first apply().
  void setup(std::int64_t steps_per_epoch, std::int64_t planned_steps, std::int64_t planned_epochs);
  /// Sets every group's lr (and momentum, when the schedule varies it) for the current count.
  void apply(Optimizer& optimizer, const std::vector<GroupInfo>& groups) const;
  /// One scheduler step: observes the monitored metric (none yet: waits, as Lightning),
  /// counts, and applies.
  void advance(const std::map<std::string, double>& metrics, Optimizer& optimizer, const std::vector<GroupInfo>& groups);

  /// {"count": scheduler steps taken, "<key>": the plugin's own state...}
  void save_state(State& out) const override;
  void load_state(const State& in) override;

 private:
  std::shared_ptr<Scheduler> scheduler_;
  std::string name_;
  std::string who_;  ///< Registry::label, for errors
  SourceLoc where_;
  bool per_step_ = false;
  /// f(), what it throws named as this scheduler's (the trainer adds the run's position)
  template <class F> decltype(auto) call(F&& f) const { return call_plugin(who_, where_, nullptr, std::forward<F>(f)); }
  std::int64_t count_ = 0;
};

}  // namespace graft::train
