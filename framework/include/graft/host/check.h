// What a recipe asks for, checked against the installed plugins before anything heavy
// runs: every section's keys and every plugin it names, with that plugin's keys.
#pragma once

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

}  // namespace graft
