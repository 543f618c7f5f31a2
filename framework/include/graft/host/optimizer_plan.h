// Freezing and the optimizer: what trains at a point of the run (the policies of
// `model.freeze`), and the optimizer's parameter groups (`optimizer.groups` rules).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "graft/freeze.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "graft/optim.h"

namespace graft {

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
std::unique_ptr<Optimizer> make_optimizer(const Recipe& recipe, const Registry& registry, const OptimizerPlan& plan);

}  // namespace graft
