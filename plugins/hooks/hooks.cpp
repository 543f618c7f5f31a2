// Built-in trainer hooks.
#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <torch/torch.h>

#include <graft/hooks.h>

namespace {

/// Stops when a monitored metric has not improved for `patience` validations (Lightning's
/// EarlyStopping): improvement means better than the best by more than min_delta.
class EarlyStopping : public graft::Hook {
 public:
  explicit EarlyStopping(const graft::Config& c)
      : monitor_(c.get<std::string>("monitor")),
        mode_(c.get<std::string>("mode")),
        patience_(c.get<std::int64_t>("patience")),
        min_delta_(c.get<double>("min_delta")) {
    where_ = c.where().str();
    best_ = mode_ == "min" ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
  }

  void on_epoch_end(graft::TrainContext& ctx) override {
    const auto it = ctx.metrics.find(monitor_);
    if (it == ctx.metrics.end()) {
      if (ctx.epoch == 0 && monitor_.rfind("val/", 0) != 0)
        throw graft::Error::usage(fmt::format("{}: early_stopping monitors '{}', which this run does not compute", where_, monitor_));
      return;  // no validation this epoch
    }
    const double v = it->second;
    const bool better = mode_ == "min" ? v < best_ - min_delta_ : v > best_ + min_delta_;
    if (better) {
      best_ = v;
      wait_ = 0;
    } else if (++wait_ > patience_) {
      ctx.request_stop(fmt::format("early_stopping: {} did not improve on {:.6g} for {} epochs", monitor_, best_, wait_));
    }
  }

  void save_state(graft::State& state) const override {
    state.set("best", best_);
    state.set("wait", wait_);
  }
  void load_state(const graft::State& state) override {
    best_ = state.get<double>("best");
    wait_ = state.get<std::int64_t>("wait");
  }

 private:
  std::string monitor_, mode_, where_;
  std::int64_t patience_;
  double min_delta_;
  double best_;
  std::int64_t wait_ = 0;
};

}  // namespace

GRAFT_PLUGIN(hook, "early_stopping", [](const graft::Config& c) { return std::make_shared<EarlyStopping>(c); },
             "stop when a metric stops improving (Lightning's EarlyStopping)",
             graft::KeySpec("monitor", "val/loss", "metric to watch: val/loss, val/top1, train/loss, ...").non_empty(),
             graft::KeySpec("mode", "min", "min: lower is better; max: higher is better").choices({"min", "max"}),
             graft::KeySpec("patience", 3, "validations without improvement before stopping").min(0),
             graft::KeySpec("min_delta", 0.0, "smallest change that counts as an improvement").min(0));
