// Where a run goes on: the checkpoint `--resume` names (auto: the newest good one of the
// run dir, or of this recipe's newest run dir), and whether the recipe still describes
// the checkpoint's model.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "graft/host/recipe.h"
#include "graft/host/trainer.h"
#include "group_sync.h"
#include "train_state.h"

namespace graft::train {

struct ResumePoint {
  std::optional<Checkpoint> from;  ///< none: a new run
  std::string run_dir;             ///< the run dir to go on in ("" when not known yet)
};

/// Found before anything is written. `run_dir`: --run-dir or trainer.run_dir ("" if none).
/// A recipe whose model differs from the checkpoint's is refused (exit 2); other
/// differences are logged as warnings.
ResumePoint find_resume(const Recipe& recipe, const TrainOptions& options, const std::string& run_dir);

/// The same for every rank of a group: rank 0 finds it, the others read the file it names.
ResumePoint find_resume_in_group(const GroupSync& sync, const Recipe& recipe, const TrainOptions& options,
                                 const std::string& run_dir);

/// runs/<recipe name>-<date-time>, made unique.
std::string default_run_dir(const Recipe& recipe);

/// The differences between two resolved recipes, one "key.path: old -> new" line each.
std::vector<std::string> recipe_diff(const std::string& saved_yaml, const std::string& current_yaml);
/// Whether a difference line changes the model (refused on resume).
bool changes_model(const std::string& diff_line);

}  // namespace graft::train
