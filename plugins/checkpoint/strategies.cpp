// Built-in checkpoint strategies: when to save, under which names, what to keep.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fnmatch.h>
#include <limits>
#include <map>

#include <ATen/core/List.h>
#include <fmt/format.h>

#include <graft/checkpoint.h>
#include <graft/error.h>
#include <graft/log.h>

namespace {

using graft::SavePoint;
using graft::TrainContext;
using Names = std::vector<std::string>;

/// The number in a name such as "step-00000120.pth" (-1 when there is none).
std::int64_t number_in(const std::string& name) {
  const auto dash = name.rfind('-');
  const auto dot = name.rfind('.');
  if (dash == std::string::npos || dot == std::string::npos || dot < dash + 2) return -1;
  try {
    return std::stoll(name.substr(dash + 1, dot - dash - 1));
  } catch (const std::exception&) {
    return -1;
  }
}

/// All but the newest `keep` of the files named `prefix-N.pth`, by N.
Names retire_numbered(const Names& existing, const std::string& prefix, std::int64_t keep) {
  if (keep <= 0) return {};
  std::vector<std::pair<std::int64_t, std::string>> mine;
  for (const auto& n : existing)
    if (n.rfind(prefix + "-", 0) == 0 && number_in(n) >= 0) mine.emplace_back(number_in(n), n);
  std::sort(mine.begin(), mine.end());
  Names out;
  for (std::size_t k = 0; k + static_cast<std::size_t>(keep) < mine.size(); ++k) out.push_back(mine[k].second);
  return out;
}

// ---- periodic ------------------------------------------------------------------------

/// last.pth, overwritten (atomically) every N epochs / steps and at the end of the run.
class SaveLast : public graft::CheckpointStrategy {
 public:
  explicit SaveLast(const graft::Config& c)
      : file_(c.get<std::string>("file")),
        epochs_(c.get<std::int64_t>("every_n_epochs")),
        steps_(c.get<std::int64_t>("every_n_steps")) {}
  Names files_to_save(TrainContext& ctx, SavePoint at) override {
    const bool now = at == SavePoint::end || (at == SavePoint::epoch && epochs_ > 0 && (ctx.epoch + 1) % epochs_ == 0) ||
                     (at == SavePoint::step && steps_ > 0 && ctx.step % steps_ == 0);
    return now ? Names{file_} : Names{};
  }

 private:
  std::string file_;
  std::int64_t epochs_, steps_;
};

/// epoch-NNNN.pth every N epochs (NNNN: epochs completed), keeping the newest `keep`.
class EveryNEpochs : public graft::CheckpointStrategy {
 public:
  explicit EveryNEpochs(const graft::Config& c) : n_(c.get<std::int64_t>("n")), keep_(c.get<std::int64_t>("keep")) {}
  Names files_to_save(TrainContext& ctx, SavePoint at) override {
    if (at != SavePoint::epoch || (ctx.epoch + 1) % n_ != 0) return {};
    return {fmt::format("epoch-{:04}.pth", ctx.epoch + 1)};
  }
  Names files_to_remove(TrainContext&, const Names& existing, const Names&) override {
    return retire_numbered(existing, "epoch", keep_);
  }

 private:
  std::int64_t n_, keep_;
};

/// step-NNNNNNNN.pth every N optimizer steps, keeping the newest `keep`.
class EveryNSteps : public graft::CheckpointStrategy {
 public:
  explicit EveryNSteps(const graft::Config& c) : n_(c.get<std::int64_t>("n")), keep_(c.get<std::int64_t>("keep")) {}
  Names files_to_save(TrainContext& ctx, SavePoint at) override {
    if (at != SavePoint::step || ctx.step % n_ != 0) return {};
    return {fmt::format("step-{:08}.pth", ctx.step)};
  }
  Names files_to_remove(TrainContext&, const Names& existing, const Names&) override {
    return retire_numbered(existing, "step", keep_);
  }

 private:
  std::int64_t n_, keep_;
};

/// time-NNNNNNNN.pth (the step) at the first step boundary after every N minutes of wall
/// clock; the clock restarts with each save and with a resumed run.
class EveryNMinutes : public graft::CheckpointStrategy {
 public:
  explicit EveryNMinutes(const graft::Config& c) : keep_(c.get<std::int64_t>("keep")) {
    period_ = std::chrono::duration<double>(c.get<double>("minutes") * 60.0);
  }
  void on_fit_start(TrainContext&) override { last_ = Clock::now(); }
  Names files_to_save(TrainContext& ctx, SavePoint at) override {
    if (at != SavePoint::step || Clock::now() - last_ < period_) return {};
    last_ = Clock::now();
    return {fmt::format("time-{:08}.pth", ctx.step)};
  }
  Names files_to_remove(TrainContext&, const Names& existing, const Names&) override {
    return retire_numbered(existing, "time", keep_);
  }

 private:
  using Clock = std::chrono::steady_clock;
  std::chrono::duration<double> period_{};
  Clock::time_point last_ = Clock::now();
  std::int64_t keep_;
};

// ---- best k --------------------------------------------------------------------------

/// The k best epochs by a monitored metric (best-epochNNNN-<metric>=<value>.pth), and
/// best.pth for the best of all. Ties keep the earlier file.
class BestK : public graft::CheckpointStrategy {
 public:
  explicit BestK(const graft::Config& c) : monitor_(c.get<std::string>("monitor")), k_(c.get<std::int64_t>("k")) {
    mode_ = c.get<std::string>("mode");
    if (mode_ == "auto") mode_ = monitor_.find("loss") != std::string::npos ? "min" : "max";
    tag_ = monitor_;
    std::replace(tag_.begin(), tag_.end(), '/', '_');
  }
  Names files_to_save(TrainContext& ctx, SavePoint at) override {
    if (at == SavePoint::end && kept_.empty() && !warned_) {
      warned_ = true;
      graft::log::warn("best_k: '{}' was never computed in this run (no validation?): no best checkpoint was written; "
                       "monitor a metric the run reports", monitor_);
    }
    if (at != SavePoint::epoch) return {};
    const auto it = ctx.metrics.find(monitor_);
    if (it == ctx.metrics.end() || !std::isfinite(it->second)) return {};  // no validation this epoch
    const double v = it->second;
    auto better = [&](double a, double b) { return mode_ == "min" ? a < b : a > b; };
    if (static_cast<std::int64_t>(kept_.size()) == k_ && !better(v, kept_.back().first)) return {};
    const std::string name = fmt::format("best-epoch{:04}-{}={:.4f}.pth", ctx.epoch + 1, tag_, v);
    const bool best = kept_.empty() || better(v, kept_.front().first);
    kept_.insert(std::upper_bound(kept_.begin(), kept_.end(), std::make_pair(v, name),
                                  [&](const auto& a, const auto& b) { return better(a.first, b.first); }),
                 {v, name});
    if (static_cast<std::int64_t>(kept_.size()) > k_) kept_.pop_back();
    return best ? Names{name, "best.pth"} : Names{name};
  }
  Names files_to_remove(TrainContext&, const Names& existing, const Names&) override {
    Names out;
    // every best-* file of this metric that is not kept (also those a killed run left)
    for (const auto& n : existing)
      if (n.rfind("best-epoch", 0) == 0 && n.find("-" + tag_ + "=") != std::string::npos &&
          std::none_of(kept_.begin(), kept_.end(), [&](const auto& k) { return k.second == n; }))
        out.push_back(n);
    return out;
  }
  void save_state(graft::State& state) const override {
    std::vector<double> scores;
    std::vector<std::string> names;
    for (const auto& [v, n] : kept_) {
      scores.push_back(v);
      names.push_back(n);
    }
    state.set("monitor", monitor_);
    state.set("scores", scores);
    state.set("files", names);
  }
  void load_state(const graft::State& state) override {
    kept_.clear();
    // an empty list reads back as ints or strings alike: no entry, nothing to restore
    if (state.get<std::string>("monitor") != monitor_ || !state.has("files") ||
        state.get<std::vector<std::string>>("files").empty())
      return;
    const auto scores = state.get<std::vector<double>>("scores");
    const auto names = state.get<std::vector<std::string>>("files");
    for (std::size_t k = 0; k < scores.size() && k < names.size(); ++k) kept_.emplace_back(scores[k], names[k]);
  }

 private:
  std::string monitor_, mode_, tag_;
  std::int64_t k_;
  std::vector<std::pair<double, std::string>> kept_;  // best first
  bool warned_ = false;
};

// ---- retention -----------------------------------------------------------------------

/// Keeps the newest k of the files matching any of `patterns` (by modification time);
/// removes the rest after every save.
class KeepLastK : public graft::CheckpointStrategy {
 public:
  explicit KeepLastK(const graft::Config& c)
      : k_(c.get<std::int64_t>("k")), patterns_(c.get<std::vector<std::string>>("patterns")) {}
  Names files_to_save(TrainContext&, SavePoint) override { return {}; }
  Names files_to_remove(TrainContext&, const Names& existing, const Names&) override {
    Names mine;
    for (const auto& n : existing)
      for (const auto& p : patterns_)
        if (::fnmatch(p.c_str(), n.c_str(), 0) == 0) {
          mine.push_back(n);
          break;
        }
    if (static_cast<std::int64_t>(mine.size()) <= k_) return {};
    return Names(mine.begin(), mine.end() - k_);  // existing is oldest first
  }

 private:
  std::int64_t k_;
  Names patterns_;
};

// ---- signals and exceptions ----------------------------------------------------------

std::atomic<int> pending_stop{0};
std::atomic<int> pending_save{0};
std::atomic<bool> stop_signals[NSIG];

extern "C" void on_graft_signal(int sig) {
  if (stop_signals[sig].load()) {
    if (pending_stop.load() != 0) {  // asked twice: stop now, as without the strategy
      ::signal(sig, SIG_DFL);
      ::raise(sig);
      return;
    }
    pending_stop.store(sig);
  } else {
    pending_save.store(sig);
  }
}

const std::map<std::string, int>& known_signals() {
  static const std::map<std::string, int> known = {{"SIGTERM", SIGTERM}, {"SIGINT", SIGINT},   {"SIGUSR1", SIGUSR1},
                                                   {"SIGUSR2", SIGUSR2}, {"SIGHUP", SIGHUP}, {"SIGQUIT", SIGQUIT}};
  return known;
}

int signal_number(const graft::Config& at, const std::string& name) {
  const auto it = known_signals().find(name);
  if (it == known_signals().end()) at.fail("unknown signal '" + name + "' (SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGHUP, SIGQUIT)");
  return it->second;
}

std::string signal_name(int sig) {
  for (const auto& [name, n] : known_signals())
    if (n == sig) return name;
  return "signal " + std::to_string(sig);
}

/// Caffe's `-sigint_effect snapshot`: a stop signal finishes the current step, saves
/// `file` and ends the process with `exit_code` (a second one kills at once); a save
/// signal saves `file` at the next step and training goes on.
class OnSignal : public graft::CheckpointStrategy {
 public:
  explicit OnSignal(const graft::Config& c) : file_(c.get<std::string>("file")), code_(c.get<int>("exit_code")) {
    for (const auto& s : c["stop"].items()) stop_.push_back(signal_number(s, s.as<std::string>()));
    for (const auto& s : c["save"].items()) save_.push_back(signal_number(s, s.as<std::string>()));
  }
  ~OnSignal() override { restore(); }

  void on_fit_start(TrainContext&) override {
    pending_stop = 0;
    pending_save = 0;
    struct sigaction sa {};
    sa.sa_handler = on_graft_signal;
    ::sigemptyset(&sa.sa_mask);
    for (int s : stop_) install(s, true, sa);
    for (int s : save_) install(s, false, sa);
  }
  void on_fit_end(TrainContext&) override { restore(); }

  Names files_to_save(TrainContext& ctx, SavePoint at) override {
    if (at != SavePoint::step && at != SavePoint::epoch) return {};
    if (const int sig = pending_stop.load()) {
      ctx.request_interrupt("interrupted by " + signal_name(sig), code_);
      return {file_};
    }
    if (pending_save.exchange(0) != 0) return {file_};
    return {};
  }

 private:
  void install(int sig, bool stops, const struct sigaction& sa) {
    stop_signals[sig] = stops;
    struct sigaction old {};
    if (::sigaction(sig, &sa, &old) == 0) saved_.emplace_back(sig, old);
  }
  void restore() {
    for (const auto& [sig, old] : saved_) ::sigaction(sig, &old, nullptr);
    saved_.clear();
  }
  std::string file_;
  int code_;
  std::vector<int> stop_, save_;
  std::vector<std::pair<int, struct sigaction>> saved_;
};

/// Saves `file` when the run fails with an exception. The state may be mid-step: the
/// file is marked not exact, and `--resume auto` passes it over (name it to use it).
class OnException : public graft::CheckpointStrategy {
 public:
  explicit OnException(const graft::Config& c) : file_(c.get<std::string>("file")) {}
  Names files_to_save(TrainContext&, SavePoint at) override { return at == SavePoint::exception ? Names{file_} : Names{}; }

 private:
  std::string file_;
};

}  // namespace

GRAFT_PLUGIN(checkpoint, "save_last", std::make_shared<SaveLast>,
             "last.pth every N epochs and/or steps and at the end of the run (overwritten atomically)",
             graft::KeySpec("file", "last.pth", "file name in checkpoints/").non_empty(),
             graft::KeySpec("every_n_epochs", 1, "save every N epochs (0: not per epoch)").min(0),
             graft::KeySpec("every_n_steps", 0, "save every N optimizer steps (0: not per step)").min(0));
GRAFT_PLUGIN(checkpoint, "every_n_epochs", std::make_shared<EveryNEpochs>,
             "epoch-NNNN.pth every N epochs", graft::KeySpec("n", 1, "epochs between saves").min(1),
             graft::KeySpec("keep", 0, "keep the newest K of these files (0: all)").min(0));
GRAFT_PLUGIN(checkpoint, "every_n_steps", std::make_shared<EveryNSteps>,
             "step-NNNNNNNN.pth every N optimizer steps",
             graft::KeySpec::required_key("n", graft::ValueType::integer, "steps between saves").min(1),
             graft::KeySpec("keep", 0, "keep the newest K of these files (0: all)").min(0));
GRAFT_PLUGIN(checkpoint, "every_n_minutes", std::make_shared<EveryNMinutes>,
             "time-NNNNNNNN.pth (the step) every N minutes of wall clock, at a step boundary",
             graft::KeySpec::required_key("minutes", graft::ValueType::number, "minutes between saves").greater_than(0),
             graft::KeySpec("keep", 0, "keep the newest K of these files (0: all)").min(0));
GRAFT_PLUGIN(checkpoint, "best_k", std::make_shared<BestK>,
             "the K best epochs by a monitored metric, and best.pth for the best one",
             graft::KeySpec("monitor", "val/top1", "metric name (val/top1, val/loss, train/loss, ...)").non_empty(),
             graft::KeySpec("mode", "auto", "max, min, or auto (min when the name holds 'loss')").choices({"max", "min", "auto"}),
             graft::KeySpec("k", 1, "how many to keep").min(1));
GRAFT_PLUGIN(checkpoint, "keep_last_k", std::make_shared<KeepLastK>,
             "retention: keeps the newest K files matching the patterns, removes the others",
             graft::KeySpec("k", 3, "files to keep").min(1),
             graft::KeySpec("patterns", std::vector<std::string>{"epoch-*.pth", "step-*.pth", "time-*.pth"},
                            "glob patterns of the files it manages")
                 .non_empty());
GRAFT_PLUGIN(checkpoint, "on_signal", std::make_shared<OnSignal>,
             "on SIGTERM/SIGINT: finish the step, save, exit with exit_code; on SIGUSR1: save and go on",
             graft::KeySpec("stop", std::vector<std::string>{"SIGTERM", "SIGINT"}, "signals that save and stop"),
             graft::KeySpec("save", std::vector<std::string>{"SIGUSR1"}, "signals that save and continue"),
             graft::KeySpec("exit_code", 75, "exit code after a stop signal (75: EX_TEMPFAIL, 'resume me')").min(1).max(125),
             graft::KeySpec("file", "last.pth", "file name in checkpoints/").non_empty());
GRAFT_PLUGIN(checkpoint, "on_exception", std::make_shared<OnException>,
             "saves when the run fails with an error (not an exact resume point)",
             graft::KeySpec("file", "exception.pth", "file name in checkpoints/").non_empty());
