// What a recipe asks for, checked against the installed plugins before anything heavy
// runs: every section's keys and every plugin it names, with that plugin's keys.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "graft/host/recipe.h"
#include "graft/host/registry.h"

namespace graft {

/// One plugin a recipe names, resolved.
struct PluginUse {
  Kind kind;
  std::string name;
  std::string library;
  std::string path;  ///< recipe key path ("model.backbone")
  SourceLoc where;
};

struct Plan {
  std::vector<PluginUse> plugins;
  std::int64_t seed = 0;
};

/// The recipe's own keys (sections, settings), checked strictly: unknown keys, wrong types
/// and missing required keys fail with file:line:col and a "did you mean".
const Schema& recipe_schema();
/// The schema of the recipe's `trainer:` section.
const Schema& trainer_schema();

/// Validates the whole recipe (its keys and every plugin it names, with that plugin's
/// keys) without building anything. Throws graft::Error (usage) at the first fault.
Plan check_recipe(const Recipe& recipe, const Registry& registry);

/// What a dry run did.
struct DryRun {
  std::vector<std::int64_t> input_shape;   ///< the batch that went in: [N, C, H, W] (none without data:)
  std::vector<std::int64_t> output_shape;  ///< what the model gave for it
  std::int64_t classes = 0;                ///< of the data (0: no data: section)
  double loss = 0;                         ///< of that batch (with data)
  bool stepped = false;                    ///< one optimizer step (the recipe has an optimizer:)
  std::size_t state_bytes = 0;             ///< the checkpoint it would write, serialized in memory
  std::vector<std::string> warnings;       ///< faults that do not stop a run (also logged)
  double seconds = 0;
};

struct DryRunOptions {
  bool weights = true;  ///< load model.weights (train skips them: its own build loads them)
  int local_rank = -1;  ///< a multi-process run's rank on this node: its CUDA device
  std::int64_t max_batch = 8;  ///< samples of the batch (shapes, not speed)
};

/// What `graft check` runs and `graft train` runs first: everything train would fail on in
/// its first step, on a model, data and plugins of its own (nothing of a run is touched,
/// nothing is written). It builds every plugin the recipe names (model, data with its
/// transforms, loss, metrics, optimizer, scheduler, hooks, checkpoint strategies), reads
/// one batch of the training split through the training transforms, runs forward, loss,
/// metrics, backward and one optimizer and scheduler step, runs a batch of the evaluation
/// transforms through the model, checks the model's outputs against the data's classes,
/// and serializes the checkpoint a run would write (optimizer and every plugin's state) in
/// memory. Every failure is one graft::Error naming the recipe entry (file:line:col), the
/// plugin and its library; a forward names the module at fault and the shapes that went
/// in. A recipe without data: (a model to inspect or export) is built, plugins and all,
/// and nothing is run. Torch's CPU random generator is left as it was.
DryRun dry_run(const Recipe& recipe, const Registry& registry, const DryRunOptions& options = {});

}  // namespace graft
