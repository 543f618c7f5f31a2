// Loss and metric plugins.
//
//   class L1 : public graft::Loss {
//     torch::Tensor forward(const torch::Tensor& out, const torch::Tensor& target) const override { ... }
//   };
//   GRAFT_PLUGIN(loss, "my_loss", make_my_loss, "...");
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "graft/plugin.h"
#include "graft/state.h"

namespace graft {

/// A training objective: the mean loss of a batch (a scalar tensor that backward() can
/// run through). `output` is the model's output [N, K] (logits), `target` the class
/// indices [N] (int64), both on the training device.
class Loss {
 public:
  virtual ~Loss() = default;
  virtual torch::Tensor forward(const torch::Tensor& output, const torch::Tensor& target) const = 0;
};

template <> struct ProductOf<Kind::loss> { using type = std::shared_ptr<Loss>; };

/// A metric accumulated over batches (training or an evaluation pass): reset(), update()
/// for every batch, then compute(). One instance is used by one pass at a time.
/// Its running sums go into checkpoints (save_state / load_state, Stateful), so a run
/// resumed mid-epoch reports the same train/* values as the run that was not stopped.
class Metric : public Stateful {
 public:
  virtual void reset() = 0;
  /// One batch: `output` [N, K] logits and `target` [N] class indices (any device; the
  /// metric moves what it keeps to the CPU).
  virtual void update(const torch::Tensor& output, const torch::Tensor& target) = 0;
  /// Named values, e.g. {"top1": 0.93}; fractions in [0, 1] for accuracies. The trainer
  /// prefixes them with the pass ("val/top1").
  virtual std::map<std::string, double> compute() const = 0;
  /// Multi-process runs: each rank accumulated its own share of the samples; before
  /// compute(), every rank merges the others' save_state() into its own, in rank order,
  /// so that all ranks compute the values of the whole pass. A metric whose state is
  /// running sums adds them. The default refuses (the run stops with one line naming the
  /// metric): a metric must say how its states combine to be used over several ranks.
  virtual void merge(const State& other) {
    (void)other;
    throw Error::usage("this metric cannot combine the sums of several ranks (it does not implement merge())");
  }
  /// A text block for the final report (a confusion matrix, per-class accuracy), or "".
  /// `classes` are the class names, position = index.
  virtual std::string report(const std::vector<std::string>& classes) const { return {}; }
};

template <> struct ProductOf<Kind::metric> { using type = std::shared_ptr<Metric>; };

}  // namespace graft
