// Single-process data parallelism over several CUDA devices (trainer.device: a list).
//
// LibTorch's torch::nn::parallel::data_parallel re-clones the whole module on every step
// (pytorch#40581) and the BatchNorm running statistics its replicas compute never reach
// the module (pytorch#21144). graft keeps the replicas: the module itself is replica 0
// (so its BatchNorm statistics are updated as Python's DataParallel updates them), the
// others are cloned once; each step scatters the batch, runs the replicas in parallel
// (a thread per device, as parallel_apply does), gathers the outputs on the first device, sums
// the replicas' gradients into the module's, and after the optimizer step copies the
// module's parameters and buffers back to the replicas.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include <torch/nn/modules/container/any.h>
#include <torch/types.h>

#ifndef GRAFT_HAS_CUDA
#define GRAFT_HAS_CUDA 0
#endif

namespace graft {

class Replicas {
 public:
  using Forward = std::function<torch::Tensor(torch::nn::AnyModule&, const torch::Tensor&)>;

  /// `module` is on devices[0]; the others get a clone each.
  Replicas(torch::nn::AnyModule module, std::vector<torch::Device> devices);
  ~Replicas();

  /// Splits `input` along dim 0 over the devices, runs `forward` on each replica (in its
  /// own thread, on its device) and concatenates the outputs on devices[0].
  torch::Tensor forward(const torch::Tensor& input, const Forward& forward);
  /// After backward: adds every replica's gradients to the module's and clears them.
  void reduce_gradients();
  /// After the optimizer step: the module's parameters, buffers and requires_grad flags
  /// are copied to every replica.
  void sync_parameters();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace graft
