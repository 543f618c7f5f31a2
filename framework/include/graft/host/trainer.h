// The trainer (host side): fits the model a recipe describes on its data, calling hooks
// at every stage, and evaluates checkpoints. The CLI's `train` and `eval` are thin over it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "graft/host/dist.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"

namespace graft {

struct TrainOptions {
  std::string run_dir;             ///< "" = runs/<recipe name>-<date-time>
  bool write_run_dir = true;       ///< false: nothing written (tests, dry runs)
  /// First graft check's dry run (graft/host/check.h): what would fail in the first step
  /// fails before the run dir is made, naming its recipe entry.
  bool dry_run = true;
  std::optional<bool> progress;    ///< a progress bar; default: when stderr is a terminal
  /// "auto": the newest good checkpoint of the run dir (without one: the newest run dir of
  /// this recipe under runs/); a path: that checkpoint. The run goes on in its run dir.
  std::string resume;
  /// A new run whose model starts from this checkpoint's weights (nothing else of it).
  std::string resume_weights_only;
  /// This process's place in a multi-process run (graft launch, torchrun): fit() joins
  /// the group (trainer.dist_backend) and trains its share. None, or one rank: alone.
  std::optional<dist::Env> dist;
};

/// One evaluation pass over a split.
struct PassResult {
  std::string split;
  std::map<std::string, double> metrics;  ///< "loss", "top1", "top5", ...
  std::int64_t samples = 0;
  std::string report;                     ///< metric reports (confusion matrix, per class)
  /// Per sample, in the order of the pass: its dataset index, class, predicted class and
  /// the softmax probability of that prediction (the run report's confusion matrix and
  /// misclassified samples).
  std::vector<std::int64_t> indices, targets, predicted;
  std::vector<float> confidence;
};

struct FitResult {
  std::int64_t epochs = 0;   ///< epochs begun
  std::int64_t steps = 0;    ///< optimizer steps done
  std::string stop_reason;   ///< "epochs", "max_steps", or what a hook said
  std::map<std::string, double> metrics;  ///< the last values ("train/loss", "val/top1", ...)
  std::optional<PassResult> test;         ///< the final pass on the test split
  std::string run_dir;
  std::string checkpoint;    ///< the last checkpoint written, if any
  std::string resumed_from;  ///< the checkpoint the run resumed from, if any
  int exit_code = 0;         ///< non-zero: interrupted (a signal), as the strategy says
  double seconds = 0;        ///< training time, across resumes
};

FitResult fit(const Recipe& recipe, const Registry& registry, const TrainOptions& options);

struct EvalOptions {
  std::string split = "test";  ///< train, val or test
  /// false: on the CPU, run the model traced, frozen and optimized for inference
  /// (conv-BatchNorm folding, oneDNN), as graft predict does; true: the model as trained.
  bool eager = false;
};

/// Builds the recipe's model without its pretrained weights, loads `checkpoint` (a graft
/// checkpoint or a plain state dict) strictly, and evaluates it on one split, opening only
/// that split of the data.
PassResult evaluate(const Recipe& recipe, const Registry& registry, const std::string& checkpoint,
                    const EvalOptions& options = {});

}  // namespace graft
