// reduce_on_plateau: Python's ReduceLROnPlateau (1.13). observe() is its step(metric); the
// lr of a group is its initial lr after the reductions so far, each applied as Python
// applies it to the group's current lr: new = max(lr * factor, min_lr), kept only when
// lr - new > eps. A group skips a reduction only when every later one would be skipped
// too, so the count of reductions is all the state a group's lr needs.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <string>

#include <graft/schedule.h>

namespace {

using graft::Config;

class ReduceOnPlateau : public graft::Scheduler {
 public:
  explicit ReduceOnPlateau(const Config& c)
      : monitor_(c.get<std::string>("monitor")), factor_(c.get<double>("factor")),
        patience_(c.get<std::int64_t>("patience")), threshold_(c.get<double>("threshold")),
        cooldown_(c.get<std::int64_t>("cooldown")), min_lr_(c.get<double>("min_lr")), eps_(c.get<double>("eps")) {
    max_mode_ = c.get<std::string>("mode") == "max";
    relative_ = c.get<std::string>("threshold_mode") == "rel";
    best_ = worst();
  }

  std::string monitor() const override { return monitor_; }

  void observe(double current) override {
    ++observed_;
    if (better(current, best_)) {
      best_ = current;
      bad_epochs_ = 0;
    } else {
      ++bad_epochs_;
    }
    if (cooldown_counter_ > 0) {
      --cooldown_counter_;
      bad_epochs_ = 0;
    }
    if (bad_epochs_ > patience_) {
      ++reductions_;
      cooldown_counter_ = cooldown_;
      bad_epochs_ = 0;
    }
  }

  double lr(double base, std::int64_t count) const override {
    (void)count;
    double lr = base;
    for (std::int64_t i = 0; i < reductions_; ++i) {
      const double next = std::max(lr * factor_, min_lr_);
      if (!(lr - next > eps_)) break;
      lr = next;
    }
    return lr;
  }

  // `best` is left out while it is the mode's worst value (±inf: no metric seen yet), so a
  // checkpoint format without infinities still holds the state.
  void save_state(graft::State& s) const override {
    s.set("num_bad_epochs", bad_epochs_);
    s.set("cooldown_counter", cooldown_counter_);
    s.set("reductions", reductions_);
    s.set("last_epoch", observed_);
    if (best_ != worst()) s.set("best", best_);
  }

  void load_state(const graft::State& s) override {
    // ints (numbers in checkpoints of graft's format 1)
    auto count = [&](const char* key) {
      const double v = s.get<double>(key);
      if (!(v >= 0) || v != std::floor(v))
        throw graft::Error::runtime(std::string("'") + key + "' is not a count: " + std::to_string(v));
      return static_cast<std::int64_t>(v);
    };
    bad_epochs_ = count("num_bad_epochs");
    cooldown_counter_ = count("cooldown_counter");
    reductions_ = count("reductions");
    observed_ = count("last_epoch");
    best_ = s.get<double>("best", worst());
  }

 private:
  double worst() const {
    return max_mode_ ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  }
  // Python's is_better, operation for operation.
  bool better(double a, double best) const {
    if (!max_mode_ && relative_) return a < best * (1. - threshold_);
    if (!max_mode_) return a < best - threshold_;
    if (relative_) return a > best * (threshold_ + 1.);
    return a > best + threshold_;
  }

  std::string monitor_;
  double factor_;
  std::int64_t patience_;
  double threshold_;
  std::int64_t cooldown_;
  double min_lr_, eps_;
  bool max_mode_ = false, relative_ = true;

  double best_;
  std::int64_t bad_epochs_ = 0, cooldown_counter_ = 0, reductions_ = 0, observed_ = 0;
};

std::shared_ptr<graft::Scheduler> make_plateau(const Config& c) { return std::make_shared<ReduceOnPlateau>(c); }

}  // namespace

using graft::KeySpec;

GRAFT_PLUGIN(scheduler, "reduce_on_plateau", make_plateau,
             "lr * factor when the monitored metric stops improving for patience steps (ReduceLROnPlateau)",
             KeySpec("monitor", "val/loss", "metric to watch, e.g. val/loss").non_empty(),
             KeySpec("mode", "min", "min: lower is better; max: higher").choices({"min", "max"}),
             KeySpec("factor", 0.1, "new lr = lr * factor").min(0).less_than(1),
             KeySpec("patience", std::int64_t{10}, "steps without improvement tolerated before a reduction").min(0),
             KeySpec("threshold", 1e-4, "how much better counts as an improvement").min(0),
             KeySpec("threshold_mode", "rel", "rel: best * (1 -/+ threshold); abs: best -/+ threshold").choices({"rel", "abs"}),
             KeySpec("cooldown", std::int64_t{0}, "steps after a reduction during which bad steps are not counted").min(0),
             KeySpec("min_lr", 0.0, "lower bound of every group's lr").min(0),
             KeySpec("eps", 1e-8, "a reduction smaller than eps is not applied").min(0));
