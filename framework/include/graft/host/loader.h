// The data pipeline of a recipe's `data:` section (host side): the dataset plugin's
// splits, class subsets, samples per class, a seeded validation split, transforms, and a
// loader with worker threads and prefetch. Plugins do not need this header.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graft/data.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"

namespace graft {

/// One batch: inputs [N, C, H, W] float, targets [N] int64, and the dataset index of each
/// sample.
struct Batch {
  torch::Tensor inputs;
  torch::Tensor targets;
  std::vector<std::int64_t> indices;
};

struct LoaderOptions {
  std::int64_t batch_size = 64;
  std::int64_t workers = 0;     ///< threads that decode and transform; 0 = in the caller's thread
  std::int64_t prefetch = 2;    ///< batches ready ahead, per worker
  bool shuffle = true;          ///< a new seeded permutation every epoch
  bool drop_last = false;
  std::uint64_t seed = 0;
  /// Multi-process runs: this rank's share of every epoch, as torch's DistributedSampler
  /// deals it: the epoch's order (padded by repeating its start to a multiple of `world`
  /// when `pad`), and rank r takes every world-th sample from the r-th. Without `pad`
  /// (evaluation) every sample is served exactly once over all ranks.
  int rank = 0;
  int world = 1;
  bool pad = true;
};

/// Batches of one dataset through transforms. Deterministic: the order of an epoch is a
/// permutation seeded by (seed, epoch), and sample i of epoch e is transformed with
/// Rng(Rng::seed_for(seed, e, i)); batches are identical whatever `workers` is.
class Loader {
 public:
  Loader(std::shared_ptr<Dataset> data, std::vector<std::shared_ptr<Transform>> transforms,
         LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  std::int64_t size() const;               ///< samples of the dataset
  std::int64_t batches_per_epoch() const;  ///< this rank's
  /// Samples all ranks serve in an epoch together (the padded length).
  std::int64_t epoch_samples() const;
  const LoaderOptions& options() const;
  /// The dataset indices of `epoch` in the order they are served.
  std::vector<std::int64_t> order(std::int64_t epoch) const;

  /// Starts serving `epoch` from batch `first_batch` (a resumed run starts mid-epoch; the
  /// skipped batches are not read). Stops any epoch in progress.
  void start(std::int64_t epoch, std::int64_t first_batch = 0);
  /// Starts serving `epoch` from the `offset`-th sample of its order over all ranks (a run
  /// resumed with another world size or batch size: the rest of the epoch is dealt anew).
  /// Returns the number the first batch served gets, so that the epoch's last batch is
  /// still batches_per_epoch() - 1.
  std::int64_t start_at_sample(std::int64_t epoch, std::int64_t offset);
  /// Samples all ranks have served in the epoch once batch `batch` is done (a checkpoint's
  /// position, whatever the world size).
  std::int64_t samples_done(std::int64_t batch) const;
  /// The next batch of the epoch, or nullopt at its end. A worker's error is rethrown here.
  std::optional<Batch> next();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace graft
