// Training beyond one process (host side): where a rank stands in its group, read from
// torchrun's environment, and the group itself over PyTorch's c10d (a TCPStore rendezvous,
// ProcessGroupGloo on the CPU; NCCL on CUDA builds). Plugins do not need this header: what
// they see of a multi-process run is TrainContext::rank and ::world (graft/hooks.h).
//
// Every failure of the group becomes one graft::Error line that names this rank and what
// it was doing ("rank 1: all-reduce of gradients failed: Connection closed by peer ...:
// another rank stopped"), never a hang past the configured timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace graft::dist {

/// Where this process stands, as torchrun (or `graft launch`) describes it.
struct Env {
  int rank = 0;
  int world = 1;
  int local_rank = 0;
  int local_world = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  /// torchrun's agent hosts the store (TORCHELASTIC_USE_AGENT_STORE=True): every rank is
  /// a client, under `store_prefix` (/worker/attempt_<TORCHELASTIC_RESTART_COUNT>).
  bool agent_store = false;
  std::string store_prefix;
  /// Rendezvous (reaching the master) and collectives give up after these.
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(60)};
  std::chrono::milliseconds timeout{std::chrono::seconds(1800)};

  bool distributed() const { return world > 1; }
  /// "rank 1/2" (for log lines and errors).
  std::string who() const;

  /// The environment's: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
  /// MASTER_PORT, TORCHELASTIC_USE_AGENT_STORE, TORCHELASTIC_RESTART_COUNT, and graft's
  /// GRAFT_RDZV_TIMEOUT / GRAFT_DIST_TIMEOUT (seconds). nullopt when WORLD_SIZE is unset
  /// (one process). A malformed or inconsistent value is a usage error naming the variable.
  static std::optional<Env> from_environment();
};

/// An asynchronous collective in flight.
class Pending {
 public:
  Pending();
  ~Pending();
  Pending(Pending&&) noexcept;
  Pending& operator=(Pending&&) noexcept;
  /// Waits for it; a failure throws graft::Error naming the rank and `what`.
  void wait();

 private:
  friend class Group;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// A process group: every rank calls the same collectives in the same order.
class Group {
 public:
  /// Rendezvous at env's master and joins the group. `backend`: "gloo", "nccl" or "auto"
  /// (NCCL for CUDA training, Gloo otherwise); `cuda` says which the training uses.
  static std::shared_ptr<Group> connect(const Env& env, const std::string& backend, bool cuda);
  ~Group();

  const Env& env() const;
  int rank() const { return env().rank; }
  int size() const { return env().world; }
  /// "gloo" or "nccl".
  const std::string& backend() const;

  /// Sums a dense tensor over the ranks, in place, asynchronously: wait on the result.
  /// `what` names the collective in errors ("all-reduce of gradients").
  Pending all_reduce_sum_async(at::Tensor& tensor, const std::string& what);
  /// In place, synchronously.
  void all_reduce_sum(at::Tensor& tensor, const std::string& what);
  /// `root`'s values of a dense tensor into every rank's, in place.
  void broadcast(at::Tensor& tensor, int root, const std::string& what);
  /// `root`'s values of every tensor into every rank's (one collective per dtype).
  void broadcast_all(const std::vector<at::Tensor>& tensors, int root, const std::string& what);
  void barrier(const std::string& what);
  /// Every rank's `bytes`, by rank.
  std::vector<std::string> all_gather(const std::string& bytes, const std::string& what);
  /// Rank 0's `bytes` on every rank.
  std::string broadcast_bytes(const std::string& bytes, const std::string& what);

  /// Tells the others why this rank fails (best effort: the store may be gone already);
  /// a rank whose collective fails names it.
  void announce_failure(const std::string& line) noexcept;

 private:
  struct Impl;
  explicit Group(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace graft::dist
