// The run's hooks: the recipe's `hooks:` then its checkpoint strategies (`checkpoint:`,
// default [save_last, on_signal]), called in that order at every stage.
#pragma once

#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "graft/checkpoint.h"
#include "graft/hooks.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"

namespace graft::train {

/// " at epoch E, batch B, step S" (epoch and batch 1-based): where a run is, for errors.
std::string position_text(const TrainContext& ctx);

/// Calls `f()`; what it throws leaves as one PluginFailure of `who` (Registry::label) at
/// the recipe entry `where`, with the run's position when `ctx` is given.
template <class F>
decltype(auto) call_plugin(const std::string& who, const SourceLoc& where, const TrainContext* ctx, F&& f) {
  try {
    return f();
  } catch (...) {
    PluginFailure::rethrow(who, where, ctx ? position_text(*ctx) : "");
  }
}

class Callbacks {
 public:
  Callbacks(const Recipe& recipe, const Registry& registry);

  /// The run's position, for the errors of hooks (set once by fit).
  void bind(const TrainContext* ctx) { ctx_ = ctx; }

  /// Calls `f(hook)` for every hook, in order. A hook that throws fails the run with one
  /// line naming it, its library and the position (epoch, batch, step).
  template <class F> void each(F&& f) {
    for (std::size_t i = 0; i < all_.size(); ++i) {
      call_plugin(all_labels_[i], all_where_[i], ctx_, [&] { f(*all_[i]); });
    }
  }
  /// Every hook sees the failing run's error; a hook that fails again is logged, not thrown.
  void exception(TrainContext& ctx, const std::exception& error) noexcept;

  const std::vector<std::shared_ptr<CheckpointStrategy>>& strategies() const { return strategies_; }

  /// The stateful plugins and the names their states are filed under in a checkpoint
  /// ("<position>:<plugin>", so two hooks of one plugin keep apart).
  std::vector<std::pair<std::string, Stateful*>> hook_states() const;
  std::vector<std::pair<std::string, Stateful*>> strategy_states() const;

 private:
  std::vector<std::shared_ptr<Hook>> hooks_;
  std::vector<std::string> hook_names_;
  std::vector<std::shared_ptr<CheckpointStrategy>> strategies_;
  std::vector<std::string> strategy_names_;
  std::vector<std::shared_ptr<Hook>> all_;
  std::vector<std::string> all_labels_;  ///< "hook 'csv' (libx.so)", in all_'s order
  std::vector<SourceLoc> all_where_;     ///< their recipe entries
  const TrainContext* ctx_ = nullptr;
};

}  // namespace graft::train
