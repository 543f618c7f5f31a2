// What a recipe asks for, checked against the installed plugins before anything heavy
// runs, and the model it describes. Host side (the CLI, tests); plugins do not need it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <torch/nn/modules/container/any.h>

#include "graft/recipe.h"
#include "graft/registry.h"
#include "graft/freeze.h"
#include "graft/optim.h"
#include "graft/weights.h"

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
const Schema& model_schema();

/// One `model.surgery` entry: replace / insert_after / insert_before / append_to / remove.
struct SurgeryOp {
  std::string op;    ///< the operation key
  std::string path;  ///< its dotted path
  std::string name;  ///< the new stage's name (insert_*, append_to)
  Config with;       ///< the module plugin spec (null for remove)
  Config node;       ///< the entry, for error locations
};
std::vector<SurgeryOp> surgery_ops(const Config& model);

/// Validates the whole recipe (its keys and every plugin it names, with that plugin's
/// keys) without building anything. Throws graft::Error (usage) at the first fault.
Plan check_recipe(const Recipe& recipe, const Registry& registry);

struct BuiltModel {
  torch::nn::AnyModule module;
  std::string backbone;               ///< the backbone plugin's name
  std::optional<LoadReport> weights;  ///< what loading `model.weights` did, when given
  std::vector<std::int64_t> input_shape;  ///< one sample's shape (C, H, W), for dry runs
  std::vector<std::string> changes;   ///< what num_classes, in_channels and surgery did, a line each
  /// Where each parameter's values come from: "loaded", "adapted" or "new".
  std::map<std::string, std::string> origin;
};

/// Builds the model the recipe describes, in order: backbone, weights, input-channel
/// adaptation, head reset (num_classes), surgery.
BuiltModel build_model(const Recipe& recipe, const Registry& registry);

// ---- freezing and the optimizer -------------------------------------------------------

/// What freezing policies see of a model.
ModelInfo model_info(const torch::nn::Module& model);

/// The policies of `model.freeze` (a list of freezer plugin specs).
std::vector<std::shared_ptr<Freezer>> make_freezers(const Recipe& recipe, const Registry& registry);
/// What the policies freeze at (epoch, step). Pure: the same answer on a resumed run.
FreezeState freeze_state(const std::vector<std::shared_ptr<Freezer>>& freezers, const ModelInfo& info,
                         std::int64_t epoch, std::int64_t step);
/// requires_grad off for frozen parameters (on for the rest), frozen BatchNorms in eval
/// mode. Call again after every model.train().
void apply_freeze(torch::nn::Module& model, const FreezeState& state);

struct OptimizerPlan {
  std::string optimizer;           ///< the plugin's name
  std::vector<ParamGroup> groups;  ///< trainable parameters only; empty groups dropped
  std::vector<std::string> frozen; ///< parameters in no group
};

/// Splits the trainable parameters by `optimizer.groups` rules (first match wins; rules:
/// params: globs, bias: true, norm: true; settings: lr, lr_mult, weight_decay, momentum).
/// Parameters unfrozen by a schedule with an lr get a group of their own.
OptimizerPlan plan_optimizer(const Recipe& recipe, const Registry& registry, const torch::nn::Module& model,
                             const FreezeState& state);
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const Recipe& recipe, const Registry& registry,
                                                        const OptimizerPlan& plan);

}  // namespace graft
