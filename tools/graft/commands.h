// The graft verbs. Each returns the process exit code and throws graft::Error for faults
// the user can fix (main turns those into one line and exit code 2).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace graft::cli {

struct RecipeArgs {
  std::string recipe;
  std::vector<std::string> overrides;
  bool json = false;
  // inspect only
  bool summary = false;
  std::string dot_file;
  std::vector<std::int64_t> input_shape;
  // train / eval
  std::string run_dir;
  std::string checkpoint;
  std::string split;
  bool eager = false;  ///< eval: the model as trained, not the optimized trace
  int progress = -1;  ///< -1: when stderr is a terminal, 0: never, 1: always
  std::string resume;               ///< train: auto or a checkpoint
  std::string resume_weights_only;  ///< train: a checkpoint whose weights start a new run
};

struct ConvertArgs {
  std::string in, out, strip_prefix, add_prefix;
  std::vector<std::string> rename, exclude;
};

/// graft features (look.cpp)
struct FeaturesArgs {
  std::string recipe, checkpoint, out = "features";
  std::vector<std::string> overrides, images, layers;
};
/// graft report (look.cpp)
struct ReportArgs {
  std::vector<std::string> run_dirs;
  std::string out;
};

int cmd_plugins(const std::string& kind, bool json);
int cmd_check(const RecipeArgs& args);
int cmd_inspect(const RecipeArgs& args);
int cmd_train(const RecipeArgs& args);
int cmd_eval(const RecipeArgs& args);
struct ExportArgs {
  std::string checkpoint, out, format = "state_dict", recipe;
  std::vector<std::string> overrides;
};

struct PredictArgs {
  std::vector<std::string> inputs;  ///< [RECIPE] IMAGE|DIR..., or MODEL.pt IMAGE|DIR...
  std::string checkpoint;
  std::vector<std::string> overrides;
  std::int64_t topk = 5, batch_size = 32;
  bool json = false, keep_going = false, eager = false;
  int progress = -1;
};

// deploy.cpp
/// A recipe file (.yaml, .yml), as opposed to a model or weights file.
bool is_recipe_path(const std::string& path);
int cmd_export(const ExportArgs& args);
int cmd_predict(const PredictArgs& args);
int cmd_convert(const ConvertArgs& args);
int cmd_version(bool json);
int cmd_features(const FeaturesArgs& args);
int cmd_report(const ReportArgs& args);

/// graft new-plugin (new_plugin.cpp)
struct NewPluginArgs {
  std::string kind, name, dir;
};
int cmd_new_plugin(const NewPluginArgs& args);

}  // namespace graft::cli
