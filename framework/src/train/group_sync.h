// What the ranks of a multi-process run agree on, one call each: the group's totals of
// metrics and loss sums, the decision at a save point (which files, whether to stop), and
// rank 0's word on a checkpoint write. Without a group (one process) every call is a no-op
// and leaves the local values as they are, so the trainer's code reads the same for both.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "graft/hooks.h"
#include "graft/host/dist.h"
#include "graft/host/trainer.h"
#include "graft/metrics.h"
#include "train_state.h"

namespace graft::train {

class GroupSync {
 public:
  explicit GroupSync(std::shared_ptr<dist::Group> group = nullptr) : group_(std::move(group)) {}

  bool active() const { return group_ && group_->size() > 1; }
  bool leader() const { return !active() || group_->rank() == 0; }
  int rank() const { return active() ? group_->rank() : 0; }
  int world() const { return active() ? group_->size() : 1; }
  const std::shared_ptr<dist::Group>& group() const { return group_; }

  /// Every rank's metrics become the whole group's (merged in rank order).
  void merge(const std::vector<std::shared_ptr<Metric>>& metrics, const std::string& what) const;
  /// Sums over the ranks, in place.
  void sum(double& value, std::int64_t& count, const std::string& what) const;
  /// A pass's per-sample lists of every rank, in rank order, on every rank.
  void gather(PassResult& r) const;
  /// At a save point: the union of the files every rank's strategies named, a stop if any
  /// rank asks for one, the largest exit code. Every rank leaves with the same decision.
  void agree(std::vector<std::string>& names, TrainContext& ctx) const;
  /// Rank 0's outcome of writing a checkpoint (its paths, or why it failed) on every rank;
  /// a failure is thrown on every rank.
  std::string outcome(const std::string& paths, const std::string& error) const;
  /// Rank 0's text on every rank.
  std::string from_leader(const std::string& text, const std::string& what) const;
  void barrier(const std::string& what) const;

 private:
  std::shared_ptr<dist::Group> group_;
};

/// While alive, training metrics and loss sums hold the group's totals on every rank; the
/// rank's own are back afterwards (an epoch's values, a checkpoint's sums).
class GroupTotals {
 public:
  GroupTotals(const GroupSync& sync, const std::vector<std::shared_ptr<Metric>>& metrics, EpochSums& sums);
  ~GroupTotals();
  GroupTotals(const GroupTotals&) = delete;
  GroupTotals& operator=(const GroupTotals&) = delete;

 private:
  const std::vector<std::shared_ptr<Metric>>& metrics_;
  EpochSums& sums_;
  EpochSums own_sums_;
  std::vector<State> own_;
  bool active_;
};

}  // namespace graft::train
