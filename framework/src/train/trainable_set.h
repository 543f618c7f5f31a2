// What trains, and with which optimizer: the freezing policies (and their schedule of
// unfreezing), the optimizer built from the recipe's groups, and the groups it holds.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "graft/freeze.h"
#include "graft/optim.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"

namespace graft::train {

/// One group of the optimizer as planned: what schedules scale and unfreezing matches.
struct GroupInfo {
  std::string name;
  double base_lr = 0;
  std::optional<double> base_momentum;
};

class TrainableSet {
 public:
  /// Applies the policies' state at the start (epoch 0) and builds the optimizer.
  TrainableSet(const Recipe& recipe, const Registry& registry, torch::nn::Module& model);

  Optimizer& optimizer() { return *optimizer_; }
  const std::vector<GroupInfo>& groups() const { return groups_; }
  const FreezeState& frozen() const { return frozen_; }
  bool scheduled() const { return !freezers_.empty(); }
  /// The optimizer plugin as errors name it, and its recipe entry.
  const std::string& who() const { return who_; }
  const SourceLoc& where() const { return where_; }

  /// requires_grad and BatchNorm eval modes as the policies say now (after model.train()).
  void apply() const;
  /// The policies' state at (epoch, step): unfrozen parameters join their group, or a
  /// group of their own appended to the optimizer. Returns whether anything changed (then
  /// the execution must copy the model again and the schedule cover new groups).
  bool advance(std::int64_t epoch, std::int64_t step);
  /// The names of the optimizer's parameters, group by group.
  std::vector<std::vector<std::string>> param_names() const;

 private:
  const Recipe& recipe_;
  const Registry& registry_;
  torch::nn::Module& model_;
  std::vector<std::shared_ptr<Freezer>> freezers_;
  ModelInfo info_;
  FreezeState frozen_;
  std::string optimizer_name_;
  std::string who_;
  SourceLoc where_;
  std::unique_ptr<Optimizer> optimizer_;
  std::vector<GroupInfo> groups_;
};

}  // namespace graft::train
