// What training and evaluation share: the recipe's model on its device, its data, loss and
// metrics, and the execution that runs it; plus one evaluation pass.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "execution.h"
#include "group_sync.h"
#include "graft/host/data_plan.h"
#include "graft/metrics.h"
#include "graft/host/build.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "graft/host/trainer.h"
#include "settings.h"

namespace graft::train {

/// Metric plugins of the recipe's `metrics:` (default: accuracy).
std::vector<std::shared_ptr<Metric>> make_metrics(const Recipe& recipe, const Registry& registry);
/// What the final report adds to the recipe's metrics, when installed.
std::vector<std::shared_ptr<Metric>> report_metrics(const Registry& registry);

class Session {
 public:
  /// `recipe` is copied: a resumed run drops its pretrained source.
  Session(const Recipe& recipe, const Registry& registry);

  /// Joins a multi-process run's group (before build(): a rank trains on its own device
  /// and its share of the data).
  void join(const dist::Env& env);
  /// Builds the model (on the device), the data, the loss and the metrics. `only_split`:
  /// open only that split of the data (build_data's `only`).
  void build(const std::string& only_split = "");
  /// The execution over the model as it is now (call after freezing: replicas copy it).
  void start_execution();

  torch::nn::Module& model() { return *built.module.ptr(); }
  Execution& execution() { return *execution_; }

  /// One pass over `dataset` in eval mode: mean loss and every metric (in a multi-process
  /// run: over this rank's share, then the group's totals on every rank). `forward` replaces
  /// the execution's (an optimized TorchScript module of the same model, on the CPU).
  PassResult evaluate_pass(const std::shared_ptr<Dataset>& dataset, const std::string& split,
                           const std::vector<std::shared_ptr<Metric>>& extra = {},
                           const std::function<torch::Tensor(const torch::Tensor&)>& forward = nullptr);

  Recipe recipe;
  const Registry& registry;
  Settings settings;
  BuiltModel built;
  DataPlan data;
  std::shared_ptr<Loss> loss;
  GroupSync sync;  ///< a multi-process run's group (none: one process)
  std::vector<std::shared_ptr<Metric>> metrics;  ///< evaluation passes' (training has its own)

 private:
  std::unique_ptr<Execution> execution_;
};

}  // namespace graft::train
