// The model a recipe describes, built: backbone, weights, input-channel adaptation, head
// reset (num_classes), surgery.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <torch/nn/modules/container/any.h>

#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "graft/host/weights.h"

namespace graft {

/// The schema of the recipe's `model:` section.
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

}  // namespace graft
