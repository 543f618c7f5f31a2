// Learning-rate schedules that are closed-form functions of (initial lr, count): the values
// Python's torch.optim.lr_scheduler (1.13) puts in optimizer.param_groups[i]['lr'] after
// `count` calls of scheduler.step(). Python computes most of them recursively (lr *= gamma);
// the closed forms here are Python's own _get_closed_form_lr, which agree with the recursion
// to rounding (tests/plugins/test_schedulers.cpp measures how closely).
//
// LibTorch's C++ StepLR is deliberately not used: in 1.13 it decays one step later than
// Python's.
#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <graft/schedule.h>

namespace {

using graft::Config;
using graft::ScheduleInfo;

/// A number as a user would write it (0.3, not 0.29999999999999999).
std::string num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

class Step : public graft::Scheduler {
 public:
  explicit Step(const Config& c) : step_size_(c.get<std::int64_t>("step_size")), gamma_(c.get<double>("gamma")) {}
  double lr(double base, std::int64_t count) const override {
    return base * std::pow(gamma_, static_cast<double>(count / step_size_));
  }

 private:
  std::int64_t step_size_;
  double gamma_;
};

class MultiStep : public graft::Scheduler {
 public:
  explicit MultiStep(const Config& c) : milestones_(c.get<std::vector<std::int64_t>>("milestones")), gamma_(c.get<double>("gamma")) {
    for (std::size_t i = 1; i < milestones_.size(); ++i) {
      if (milestones_[i] <= milestones_[i - 1])
        c["milestones"].fail("must be strictly increasing; " + std::to_string(milestones_[i]) + " follows " +
                             std::to_string(milestones_[i - 1]));
    }
  }
  double lr(double base, std::int64_t count) const override {
    // bisect_right(milestones, count): how many milestones were reached
    std::int64_t passed = 0;
    for (auto m : milestones_) passed += m <= count;
    return base * std::pow(gamma_, static_cast<double>(passed));
  }

 private:
  std::vector<std::int64_t> milestones_;
  double gamma_;
};

class Exponential : public graft::Scheduler {
 public:
  explicit Exponential(const Config& c) : gamma_(c.get<double>("gamma")) {}
  double lr(double base, std::int64_t count) const override { return base * std::pow(gamma_, static_cast<double>(count)); }

 private:
  double gamma_;
};

// LinearLR's closed form, shared by `linear` and the warm-up of `cosine`.
double linear_factor(double start, double end, std::int64_t total_iters, std::int64_t count) {
  return start + (end - start) * static_cast<double>(std::min(total_iters, count)) / static_cast<double>(total_iters);
}

class Linear : public graft::Scheduler {
 public:
  explicit Linear(const Config& c)
      : start_(c.get<double>("start_factor")), end_(c.get<double>("end_factor")),
        total_iters_(c.get<std::int64_t>("total_iters")) {}
  double lr(double base, std::int64_t count) const override {
    return base * linear_factor(start_, end_, total_iters_, count);
  }

 private:
  double start_, end_;
  std::int64_t total_iters_;
};

class Constant : public graft::Scheduler {
 public:
  explicit Constant(const Config& c) : factor_(c.get<double>("factor")), total_iters_(c.get<std::int64_t>("total_iters")) {}
  double lr(double base, std::int64_t count) const override {
    return base * (factor_ + static_cast<double>(count >= total_iters_) * (1 - factor_));
  }

 private:
  double factor_;
  std::int64_t total_iters_;
};

// CosineAnnealingLR past t_max follows the same periodic curve as Python: its recursion
// climbs back to the initial lr at 2 * t_max, and so on (the closed form below).
class Cosine : public graft::Scheduler {
 public:
  explicit Cosine(const Config& c)
      : where_(c), eta_min_(c.get<double>("eta_min")), warmup_(c.get<std::int64_t>("warmup")),
        start_factor_(c.get<double>("warmup_start_factor")) {
    if (!c["t_max"].is_null()) t_max_ = c.get<std::int64_t>("t_max");
  }
  void setup(const ScheduleInfo& info) override {
    if (where_["t_max"].is_null()) {
      t_max_ = info.total - warmup_;
      if (t_max_ < 1)
        where_.fail("scheduler cosine: t_max defaults to the run's " + std::to_string(info.total) + " scheduler steps minus " +
                    std::to_string(warmup_) + " of warm-up, which leaves nothing to anneal; set t_max or shorten warmup");
    }
  }
  double lr(double base, std::int64_t count) const override {
    if (count < warmup_) return base * linear_factor(start_factor_, 1.0, warmup_, count);
    if (t_max_ < 1) throw graft::Error::runtime("scheduler cosine: lr() asked before setup() gave the run's length");
    const double t = static_cast<double>(count - warmup_);
    return eta_min_ + (base - eta_min_) * (1 + std::cos(M_PI * t / static_cast<double>(t_max_))) / 2;
  }

 private:
  Config where_;
  double eta_min_;
  std::int64_t warmup_;
  double start_factor_;
  std::int64_t t_max_ = 0;
};

// OneCycleLR. Its phases, as Python lists them: where each ends (a fractional step) and
// what lr and momentum it goes from and to.
class OneCycle : public graft::Scheduler {
 public:
  explicit OneCycle(const Config& c)
      : where_(c), pct_start_(c.get<double>("pct_start")), div_(c.get<double>("div_factor")),
        final_div_(c.get<double>("final_div_factor")), three_phase_(c.get<bool>("three_phase")),
        cycle_momentum_(c.get<bool>("cycle_momentum")), base_momentum_(c.get<double>("base_momentum")),
        max_momentum_(c.get<double>("max_momentum")) {
    if (!c["max_lr"].is_null()) max_lr_ = c.get<double>("max_lr");
    if (!c["total_steps"].is_null()) total_ = c.get<std::int64_t>("total_steps");
    cos_ = c.get<std::string>("anneal_strategy") == "cos";
    if (total_ > 0) check_phases(c["total_steps"]);
  }
  std::string default_interval() const override { return "step"; }
  void setup(const ScheduleInfo& info) override {
    if (!where_["total_steps"].is_null()) return;
    total_ = info.total;
    if (total_ < 2) where_.fail("scheduler one_cycle: total_steps defaults to the run's scheduler steps, " + std::to_string(info.total) + "; one_cycle needs at least 2");
    check_phases(where_);
  }
  double lr(double base, std::int64_t count) const override {
    const double max = max_lr_.value_or(base), initial = max / div_, min = initial / final_div_;
    const double values[] = {initial, max, min};
    const auto [phase, pct] = locate(count);
    return anneal(values[phase.lr_from], values[phase.lr_to], pct);
  }
  std::optional<double> momentum(double base, std::int64_t count) const override {
    (void)base;
    if (!cycle_momentum_) return std::nullopt;
    const double values[] = {max_momentum_, base_momentum_};
    const auto [phase, pct] = locate(count);
    return anneal(values[phase.momentum_from], values[phase.momentum_to], pct);
  }

 private:
  enum { initial_lr = 0, max_lr = 1, min_lr = 2, max_m = 0, base_m = 1 };
  struct Phase {
    double end_step;
    int lr_from, lr_to, momentum_from, momentum_to;
  };

  std::vector<Phase> phases() const {
    const double n = static_cast<double>(total_);
    if (three_phase_)
      return {{pct_start_ * n - 1, initial_lr, max_lr, max_m, base_m},
              {2 * pct_start_ * n - 2, max_lr, initial_lr, base_m, max_m},
              {n - 1, initial_lr, min_lr, max_m, max_m}};
    return {{pct_start_ * n - 1, initial_lr, max_lr, max_m, base_m}, {n - 1, max_lr, min_lr, base_m, max_m}};
  }
  // Python divides by each phase's length: a phase that ends where it starts is a
  // ZeroDivisionError there, an error here. (A very short run gives phases of negative
  // length: Python then anneals on with the other phase's values, and so does graft.)
  void check_phases(const Config& at) const {
    double start = 0;
    for (const auto& p : phases()) {
      if (p.end_step == start)
        at.fail("pct_start " + num(pct_start_) + " of " + std::to_string(total_) + " steps leaves a phase of " +
                (three_phase_ ? "the three-phase " : "") + "one_cycle with no steps; raise total_steps or change pct_start");
      start = p.end_step;
    }
  }
  // Python refuses to step past total_steps; graft holds the final lr (and momentum) there.
  std::pair<Phase, double> locate(std::int64_t count) const {
    if (total_ < 1) throw graft::Error::runtime("scheduler one_cycle: lr() asked before setup() gave the run's length");
    const double step = static_cast<double>(count > total_ ? total_ - 1 : count);
    const auto ps = phases();
    double start = 0;
    for (std::size_t i = 0; i < ps.size(); ++i) {
      if (step <= ps[i].end_step || i + 1 == ps.size()) return {ps[i], (step - start) / (ps[i].end_step - start)};
      start = ps[i].end_step;
    }
    return {ps.back(), 1.0};  // not reached
  }
  double anneal(double start, double end, double pct) const {
    if (cos_) return end + (start - end) / 2.0 * (std::cos(M_PI * pct) + 1);
    return (end - start) * pct + start;
  }

  Config where_;
  std::optional<double> max_lr_;
  std::int64_t total_ = 0;
  double pct_start_, div_, final_div_;
  bool three_phase_, cycle_momentum_;
  double base_momentum_, max_momentum_;
  bool cos_ = true;
};

template <class S> std::shared_ptr<graft::Scheduler> make(const Config& c) { return std::make_shared<S>(c); }

}  // namespace

using graft::KeySpec;
using graft::ValueType;

GRAFT_PLUGIN(scheduler, "step", make<Step>, "lr * gamma every step_size steps (torch.optim.lr_scheduler.StepLR)",
             KeySpec::required_key("step_size", ValueType::integer, "scheduler steps between decays").min(1),
             KeySpec("gamma", 0.1, "multiplicative decay").greater_than(0));
GRAFT_PLUGIN(scheduler, "multistep", make<MultiStep>, "lr * gamma at each milestone (MultiStepLR)",
             KeySpec::required_key("milestones", ValueType::int_list, "strictly increasing scheduler-step counts")
                 .non_empty()
                 .min(1),
             KeySpec("gamma", 0.1, "multiplicative decay").greater_than(0));
GRAFT_PLUGIN(scheduler, "exponential", make<Exponential>, "lr * gamma every step (ExponentialLR)",
             KeySpec::required_key("gamma", ValueType::number, "multiplicative decay").greater_than(0));
GRAFT_PLUGIN(scheduler, "cosine", make<Cosine>,
             "cosine annealing (CosineAnnealingLR; periodic past t_max as in Python); with warmup: "
             "SequentialLR([LinearLR(start_factor=warmup_start_factor, total_iters=warmup), "
             "CosineAnnealingLR(t_max, eta_min)], milestones=[warmup])",
             KeySpec("t_max", ValueType::integer, "~", "steps from the peak to eta_min (default: the run's steps minus warmup)")
                 .min(1),
             KeySpec("eta_min", 0.0, "lowest lr"),
             KeySpec("warmup", std::int64_t{0}, "scheduler steps of linear warm-up before the cosine").min(0),
             KeySpec("warmup_start_factor", 1.0 / 3, "lr factor at the first warm-up step (LinearLR's start_factor)")
                 .min(0)
                 .max(1));
GRAFT_PLUGIN(scheduler, "one_cycle", make<OneCycle>,
             "1cycle policy (OneCycleLR), lr and momentum; max_lr defaults to each group's lr",
             KeySpec("max_lr", ValueType::number, "~", "peak lr of every group (default: each group's own lr)").greater_than(0),
             KeySpec("total_steps", ValueType::integer, "~", "length of the cycle (default: the run's scheduler steps)").min(2),
             KeySpec("pct_start", 0.3, "fraction of the cycle spent increasing the lr").greater_than(0).less_than(1),
             KeySpec("anneal_strategy", "cos", "how the lr moves between phases").choices({"cos", "linear"}),
             KeySpec("div_factor", 25.0, "initial lr = max_lr / div_factor").greater_than(0),
             KeySpec("final_div_factor", 1e4, "final lr = initial lr / final_div_factor").greater_than(0),
             KeySpec("three_phase", false, "anneal back to the initial lr before the final decay"),
             KeySpec("cycle_momentum", true, "cycle momentum (SGD momentum, Adam beta1) inversely to the lr; replaces the optimizer's, as in Python"),
             KeySpec("base_momentum", 0.85, "lowest momentum, at the peak lr"),
             KeySpec("max_momentum", 0.95, "highest momentum, at the start and the end"));
GRAFT_PLUGIN(scheduler, "linear", make<Linear>, "lr factor moving linearly from start_factor to end_factor (LinearLR)",
             KeySpec("start_factor", 1.0 / 3, "factor at count 0").min(0).max(1),
             KeySpec("end_factor", 1.0, "factor from total_iters on").min(0).max(1),
             KeySpec("total_iters", std::int64_t{5}, "scheduler steps to reach end_factor").min(1));
GRAFT_PLUGIN(scheduler, "constant", make<Constant>, "lr * factor for the first total_iters steps (ConstantLR)",
             KeySpec("factor", 1.0 / 3, "factor before total_iters").min(0).max(1),
             KeySpec("total_iters", std::int64_t{5}, "scheduler steps at the reduced lr").min(1));
