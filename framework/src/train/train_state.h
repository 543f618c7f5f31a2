// The checkpoint's layout: the one place that knows it. A checkpoint is a dict that
// Python's torch.load reads as
//   {'epoch', 'step', 'model_state_dict', 'optimizer_state_dict', 'loss', 'graft_version',
//    'hooks', 'scheduler', 'graft': {format, exact, saved_at, position, rng, amp,
//    train_sums, metrics, metric_states, checkpoint, freeze, recipe, recipe_file,
//    versions, seconds}}
// written by write_checkpoint() and read back by the same file's code; every read is
// checked, so a malformed checkpoint fails with one line naming the file and the key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/ivalue.h>
#include <torch/nn/module.h>

#include "graft/checkpoint.h"
#include "graft/hooks.h"
#include "graft/metrics.h"
#include "graft/host/check.h"
#include "graft/host/recipe.h"
#include "graft/host/serialize.h"
#include "graft/state.h"

namespace graft::train {

class TrainableSet;
class ScheduleDriver;
class Callbacks;
class LossScaler;

/// The format written; format 1 (graft 0.x before the trainer's units) is read too: its
/// metrics' running sums were not saved, so after a mid-epoch resume from it the epoch's
/// train/* metrics other than the loss cover the batches since the resume.
constexpr std::int64_t checkpoint_format = 2;

/// The running sums of an epoch's training loss.
struct EpochSums {
  double loss_sum = 0;
  std::int64_t seen = 0;
};

/// The units of a run whose state a checkpoint holds.
struct RunParts {
  torch::nn::Module& model;
  TrainableSet& trainable;
  ScheduleDriver& schedule;
  Callbacks& callbacks;
  std::vector<std::pair<std::string, Stateful*>> metrics;  ///< the training metrics, by label
  LossScaler& scaler;
  TrainContext& ctx;
  EpochSums& sums;
  const std::vector<std::string>& classes;           ///< the data's class names
  const std::vector<std::int64_t>& sample_shape;     ///< one transformed sample (C, H, W)
};

/// Where and when a checkpoint is written.
struct SavePosition {
  SavePoint at = SavePoint::step;
  std::int64_t epoch = 0;  ///< epochs completed
  std::int64_t batch = 0;  ///< batches of the next epoch already done
  std::int64_t batches_per_epoch = 0;
  double seconds = 0;      ///< training time of the whole run so far
  std::int64_t samples = 0;     ///< samples of the next epoch done, over all ranks
  std::int64_t world = 1;       ///< ranks of the run
  std::int64_t batch_size = 0;  ///< per rank
};

/// A State as bytes (a pickled dict), and back: how ranks exchange plugins' states.
std::string state_bytes(const State& state);
State state_from_bytes(const std::string& bytes, const std::string& what);

/// Metrics as a checkpoint files their states: by position ("0", "1", ...).
std::vector<std::pair<std::string, Stateful*>> metric_states(const std::vector<std::shared_ptr<Metric>>& metrics);

c10::IValue write_checkpoint(const RunParts& parts, const SavePosition& at, const Recipe& recipe, const Plan& used);

/// A checkpoint file, read (every record's CRC-32 checked) and its header checked.
class Checkpoint {
 public:
  /// Throws graft::Error naming the file and, for a malformed one, the key.
  static Checkpoint load(const std::string& path);
  /// The same, from the file's contents already read (read_torch_file).
  static Checkpoint from(const std::string& path, c10::IValue root);
  /// Whether a file's contents are a graft checkpoint (not a plain state dict).
  static bool is_checkpoint(const c10::IValue& root);

  const std::string& path() const { return path_; }
  std::int64_t format() const { return format_; }
  bool exact() const { return exact_; }
  std::int64_t epoch() const { return epoch_; }  ///< epochs completed
  std::int64_t batch() const { return batch_; }  ///< batches of the next epoch done
  std::int64_t step() const { return step_; }
  /// Samples of the next epoch done over all ranks, the ranks and the per-rank batch size
  /// of the run that wrote it (checkpoints before 0.10: -1, 1 and 0).
  std::int64_t samples() const { return samples_; }
  std::int64_t world() const { return world_; }
  std::int64_t batch_size() const { return batch_size_; }
  const std::string& recipe_yaml() const { return recipe_; }
  const std::string& recipe_file() const { return recipe_file_; }
  /// The data's class names and one sample's shape (empty in checkpoints before 0.9).
  const std::vector<std::string>& classes() const { return classes_; }
  const std::vector<std::int64_t>& sample_shape() const { return sample_shape_; }
  /// The model's weights.
  StateDict weights() const;

  /// Restores every part: weights, optimizer state (by parameter name), schedule, hooks,
  /// checkpoint strategies, metrics, loss scaler, sums, ctx.step and ctx.metrics. Returns
  /// the training seconds before this run. The trainable set must already be at the
  /// checkpoint's epoch (its optimizer has the same groups).
  double restore(RunParts& parts) const;
  /// The default generators' states (CPU, every CUDA device).
  void restore_rng() const;
  /// Frees the file's tensors (one buffer) once the run holds what it needs.
  void release();

 private:
  std::string path_;
  c10::IValue root_;
  std::int64_t format_ = 0, epoch_ = 0, batch_ = 0, step_ = 0;
  std::int64_t samples_ = -1, world_ = 1, batch_size_ = 0;
  bool exact_ = true;
  std::string recipe_, recipe_file_;
  std::vector<std::string> classes_;
  std::vector<std::int64_t> sample_shape_;
};

/// The newest checkpoint that loads and is exact; those passed over are logged with why.
std::optional<Checkpoint> newest_good(const std::string& checkpoints_dir);

}  // namespace graft::train
