// A trained model outside the training loop: rebuilt from a checkpoint (and its own
// resolved recipe), exported as TorchScript with graft.json, and run on image files
// (`graft export`, `graft predict`).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "graft/data.h"
#include "graft/host/build.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "graft/host/script.h"

namespace graft {

/// The recipe's model with a checkpoint's weights, on the CPU in eval mode, and what an
/// export carries with it.
struct TrainedModel {
  Recipe recipe;
  BuiltModel built;
  DeployInfo info;
};

/// Rebuilds the model of `checkpoint` (a graft checkpoint or a plain state dict) from
/// `recipe`, or, when it is null, from the checkpoint's own resolved recipe (whose
/// `plugins:` are scanned into `registry`). Every weight must fit. The class names and
/// the sample shape come from the checkpoint; for older files and plain state dicts, from
/// the recipe's test split, or from torchvision's metadata for a model without data:.
TrainedModel load_trained(const std::string& checkpoint, const Recipe* recipe, Registry& registry);

/// `graft export --format torchscript`: traces the model (refusing one the trace cannot
/// reproduce) and writes it with graft.json.
void export_torchscript(TrainedModel& model, const std::string& out);

/// The image files under `paths`: files as given, directories searched recursively for
/// .png/.jpg/.jpeg (sorted). A path that does not exist is kept, so that predicting it
/// reports it with the others.
std::vector<std::string> image_files(const std::vector<std::string>& paths);

struct PredictOptions {
  std::int64_t topk = 5;
  std::int64_t batch_size = 32;
  bool keep_going = false;  ///< false: the first file that fails stops the run (a usage error)
  /// Called after each batch with (files done, files in all).
  std::function<void(std::int64_t, std::int64_t)> progress;
};

struct Prediction {
  struct Class {
    std::int64_t index = 0;
    std::string name;
    double probability = 0;
  };
  std::string file;
  std::vector<Class> top;  ///< best first
  std::string error;       ///< why the file was not predicted ("" when it was)
};

/// Runs a model on image files through the evaluation transforms of `info`: decoded as
/// info.color_mode says, checked against info.input_shape, batched.
class Predictor {
 public:
  using Forward = std::function<torch::Tensor(const torch::Tensor&)>;
  Predictor(DeployInfo info, const Registry& registry, Forward forward);
  std::vector<Prediction> run(const std::vector<std::string>& files, const PredictOptions& options) const;

 private:
  /// One file decoded and transformed; throws graft::Error naming it.
  torch::Tensor prepare(const Dataset& files, std::int64_t index, const std::string& file) const;

  DeployInfo info_;
  const Registry& registry_;
  Forward forward_;
  std::vector<std::string> names_;  ///< the transforms' plugin names
  std::vector<std::shared_ptr<Transform>> transforms_;
};

}  // namespace graft
