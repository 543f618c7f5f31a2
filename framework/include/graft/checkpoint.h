// Checkpoint strategies: plugins that decide WHEN the run is saved and under WHICH names,
// and which of the files they wrote to remove (retention). The trainer owns the rest:
// what a checkpoint holds, writing it atomically (temp file, fsync, rename, fsync dir),
// writing it once when several names are asked for at one point, and resuming from it.
//
// A strategy is a Hook, so it sees every stage of the run and keeps its own state in the
// checkpoint (save_state / load_state, graft/state.h). At each save point the trainer asks
// every strategy, in recipe order, for the files it wants now.
//
//   class EveryTenSteps : public graft::CheckpointStrategy {
//     std::vector<std::string> files_to_save(graft::TrainContext& c, graft::SavePoint at) override {
//       if (at == graft::SavePoint::step && c.step % 10 == 0) return {fmt::format("step-{}.pth", c.step)};
//       return {};
//     }
//   };
//   GRAFT_PLUGIN(checkpoint, "every_ten_steps", [](const graft::Config&) { return std::make_shared<EveryTenSteps>(); }, "...");
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "graft/hooks.h"

namespace graft {

/// Where in a run a checkpoint may be written. Every point but `exception` is exact: the
/// run resumed from it ends bit-identical (on CPU) to the run that was not stopped.
enum class SavePoint {
  step,       ///< an optimizer step is complete (end of its batch, after on_batch_end)
  epoch,      ///< an epoch is complete (after validation, on_epoch_end and the scheduler)
  end,        ///< training is over (last epoch, max_steps or a hook's stop), before the test pass
  exception,  ///< the run is failing: the state may be mid-step; the file is marked not exact
};

const char* save_point_name(SavePoint at);

class CheckpointStrategy : public Hook {
 public:
  /// The files (plain names, written in the run's checkpoints/ dir) to write now; {} for
  /// none. A strategy that stops the run (ctx.request_stop) asks for its file in the same call.
  virtual std::vector<std::string> files_to_save(TrainContext& ctx, SavePoint at) = 0;
  /// After the files of this save point are committed: which files of checkpoints/ to
  /// remove (retention). `existing` lists checkpoints/*.pth, oldest first; `saved` what
  /// this point wrote. The trainer never removes a file written at this point.
  virtual std::vector<std::string> files_to_remove(TrainContext& ctx, const std::vector<std::string>& existing,
                                                   const std::vector<std::string>& saved) {
    (void)ctx, (void)existing, (void)saved;
    return {};
  }
};

template <> struct ProductOf<Kind::checkpoint> { using type = std::shared_ptr<CheckpointStrategy>; };

}  // namespace graft
