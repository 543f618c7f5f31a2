#include "schedule_driver.h"

namespace graft::train {

ScheduleDriver::ScheduleDriver(const Recipe& recipe, const Registry& registry, const Settings& settings) {
  const Config sc = recipe.root["scheduler"];
  if (sc.is_null()) return;
  scheduler_ = registry.create<Kind::scheduler>(sc, {"interval"});
  name_ = Registry::spec_name(sc);
  who_ = registry.label(Kind::scheduler, sc);
  where_ = sc.where();
  const std::string interval = sc.is_map() && sc.has("interval") ? sc["interval"].as<std::string>() : scheduler_->default_interval();
  if (interval != "epoch" && interval != "step") sc["interval"].fail("expected epoch or step, got '" + interval + "'");
  per_step_ = interval == "step";
  const std::string monitor = scheduler_->monitor();
  if (monitor.rfind("val/", 0) == 0 && per_step_)
    sc.fail("monitors '" + monitor + "', known only after a validation pass: use interval: epoch");
  const Config val = recipe.root["data"]["val"];
  const bool no_val = val.is_scalar() && val.scalar() == "none";
  if (monitor.rfind("val/", 0) == 0 && (settings.val_every <= 0 || no_val))
    sc.fail("monitors '" + monitor + "', but the run does not validate (data.val: none or trainer.val_every: 0)");
}

void ScheduleDriver::setup(std::int64_t steps_per_epoch, std::int64_t planned_steps, std::int64_t planned_epochs) {
  if (!scheduler_) return;
  ScheduleInfo si;
  si.per_step = per_step_;
  si.steps_per_epoch = steps_per_epoch;
  si.epochs = planned_epochs;
  si.total = per_step_ ? planned_steps : planned_epochs;
  call([&] { scheduler_->setup(si); });
}

void ScheduleDriver::apply(Optimizer& optimizer, const std::vector<GroupInfo>& groups) const {
  if (!scheduler_) return;
  for (std::size_t k = 0; k < groups.size(); ++k) {
    optimizer.set_lr(k, call([&] { return scheduler_->lr(groups[k].base_lr, count_); }));
    if (groups[k].base_momentum)
      if (auto m = call([&] { return scheduler_->momentum(*groups[k].base_momentum, count_); })) optimizer.set_momentum(k, *m);
  }
}

void ScheduleDriver::advance(const std::map<std::string, double>& metrics, Optimizer& optimizer,
                             const std::vector<GroupInfo>& groups) {
  if (!scheduler_) return;
  const std::string monitor = scheduler_->monitor();
  if (!monitor.empty()) {
    const auto it = metrics.find(monitor);
    if (it == metrics.end()) return;  // no fresh value (an epoch without validation)
    call([&] { scheduler_->observe(it->second); });
  }
  ++count_;
  apply(optimizer, groups);
}

void ScheduleDriver::save_state(State& out) const {
  if (!scheduler_) return;
  out.set("count", count_);
  State own;
  call([&] { scheduler_->save_state(own); });
  for (const auto& [k, v] : own.items()) {
    if (k == "count") throw Error::runtime("scheduler " + name_ + " saves a state key 'count', which graft keeps itself");
    out.set(k, v);
  }
}

void ScheduleDriver::load_state(const State& in) {
  if (!scheduler_) return;
  count_ = in.get<std::int64_t>("count");
  State own;
  for (const auto& [k, v] : in.items())
    if (k != "count") own.set(k, v);
  if (!own.empty()) call([&] { scheduler_->load_state(own); });
}

}  // namespace graft::train
