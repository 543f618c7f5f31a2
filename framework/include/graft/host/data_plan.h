// The recipe's `data:` section, opened: the dataset plugin's splits (class subsets,
// samples per class, a seeded validation split), the transforms and the loaders' options.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "graft/data.h"
#include "graft/host/loader.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"

namespace graft {

/// What `data:` describes, opened.
struct DataPlan {
  std::shared_ptr<Dataset> train, val, test;  ///< val may be null (no validation)
  std::vector<std::shared_ptr<Transform>> train_transforms, eval_transforms;
  std::vector<Config> eval_transform_specs;   ///< the recipe's entries of eval_transforms
  std::vector<std::string> classes;           ///< after subsetting and relabelling
  std::vector<std::int64_t> sample_shape;     ///< one transformed training sample (C, H, W)
  LoaderOptions train_options, eval_options;
  std::string description;                    ///< a line per split: sizes, classes
};

/// The schema of the recipe's `data:` section.
const Schema& data_schema();
/// Opens the datasets and builds the transforms of `data:`. Errors name the recipe key.
/// `only` = "test" or "val": open just that split (evaluation on a dataset that may have
/// no other; a val hold-out of the training split still opens train); "": all of them.
DataPlan build_data(const Recipe& recipe, const Registry& registry, const std::string& only = "");
/// The recipe tree with `data.eval_transforms: pretrained` written out as the transforms it
/// stands for (before model.weights is dropped for a checkpoint's weights).
Config expand_pretrained_transforms(const Config& root);
/// The entries of the evaluation transforms `data:` describes (eval_transforms with
/// `pretrained` expanded, or the non-random ones of transforms), without opening any data;
/// empty without a data: section.
std::vector<Config> eval_transform_specs(const Recipe& recipe, const Registry& registry);
/// A list of transform specs (names or maps with name:) made into transforms; errors name
/// the entry at fault.
std::vector<std::shared_ptr<Transform>> build_transforms(const Registry& registry, const Config& list);

}  // namespace graft
