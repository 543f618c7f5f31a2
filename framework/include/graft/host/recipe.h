// Recipes: YAML files with `base:` inheritance and --set overrides, turned into one tree
// of Config nodes that remember their file:line:col. Host side; plugins see only Config.
#pragma once

#include <string>
#include <vector>

#include "graft/config.h"

namespace graft {

struct Recipe {
  std::string file;                       ///< the recipe given on the command line
  std::vector<std::string> sources;       ///< it and every base it inherits, in load order
  Config root;                            ///< the merged, overridden tree
  /// Recipe `plugins:` entries, resolved relative to the file that names them.
  std::vector<std::string> plugin_paths;
};

/// Parses a YAML file into a Config tree (no inheritance). Syntax errors carry file:line:col.
Config parse_yaml_file(const std::string& path);
/// Parses YAML text; `source` names it in errors.
Config parse_yaml_text(const std::string& text, const std::string& source);

/// Loads `path`, resolves `base:` (relative to the file naming it; maps are deep-merged,
/// lists replaced; a cycle is an error) and applies `overrides` ("a.b.c=VALUE", VALUE
/// parsed as YAML; list items addressed by index). Only syntax is checked here.
Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});

/// Deep merge: maps merged key by key (override wins), anything else replaced.
Config merge(const Config& base, const Config& override_);

}  // namespace graft
