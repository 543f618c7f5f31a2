// DDP's gradient all-reduce for graft's multi-process training: the parameters that
// require gradients are put in buckets of about `bucket_bytes`, in reverse parameter order
// (the order backward produces them); a post hook on each parameter's gradient accumulator
// marks it ready, and a bucket whose gradients are all ready is flattened and all-reduced
// while backward goes on. Buckets start strictly in order, so every rank issues the same
// collectives in the same order; a bucket held up by a parameter this step did not use is
// started after backward. Each bucket also sums, per parameter, whether the rank had a
// gradient for it: a parameter no rank used keeps no gradient (as in one process), one
// used by some ranks gets the average over all ranks (zeros for the others, as DDP).
//
// c10d's own Reducer is not usable from C++ (../shared/FACTS.md): this is that design,
// small.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace torch::autograd {
struct Node;
}

#include "graft/host/dist.h"

namespace graft::dist {

class Reducer {
 public:
  /// `params`: every parameter of the model, in the model's order.
  Reducer(Group& group, std::vector<torch::Tensor> params, std::size_t bucket_bytes);
  ~Reducer();
  Reducer(const Reducer&) = delete;
  Reducer& operator=(const Reducer&) = delete;

  /// Before a backward: `sync` when it completes an accumulation group (its gradients are
  /// to be reduced); micro-steps before it reduce nothing. Rebuilds the buckets when the
  /// set of parameters that require gradients changed (unfreezing).
  void prepare(bool sync);
  /// After backward: starts the buckets not started yet, waits for all, and leaves every
  /// parameter's gradient the mean over the ranks. A no-op after prepare(false).
  void finish();
  /// Seconds spent waiting in finish() (the all-reduce not hidden behind backward), summed.
  double waited_seconds() const { return waited_; }

 private:
  struct Bucket;
  struct Hook;
  void rebuild();
  void ready(std::size_t param);
  void launch(Bucket& b);

  Group& group_;
  std::vector<torch::Tensor> params_;
  std::size_t bucket_bytes_;
  std::vector<bool> requires_;             ///< per parameter, when the buckets were made
  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::vector<int> bucket_of_;             ///< per parameter (-1: none)
  std::vector<bool> hooked_;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;  ///< kept alive: hooks live on them
  std::vector<std::uintptr_t> hook_keys_;
  std::size_t next_launch_ = 0;
  bool armed_ = false;
  double waited_ = 0;
};

}  // namespace graft::dist
