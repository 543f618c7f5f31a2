#include "train/parallel.h"

#include "graft/error.h"

#if GRAFT_HAS_CUDA
#include <c10/cuda/CUDAGuard.h>
#endif

#include <exception>
#include <thread>

#include <torch/torch.h>

namespace graft {

struct Replicas::Impl {
  torch::nn::AnyModule module;
  std::vector<torch::Device> devices;
  std::vector<torch::nn::AnyModule> replicas;  // [0] is `module` itself
};

Replicas::Replicas(torch::nn::AnyModule module, std::vector<torch::Device> devices) : impl_(std::make_unique<Impl>()) {
#if !GRAFT_HAS_CUDA
  (void)module;
  (void)devices;
  throw Error::usage("DataParallel needs a graft built with CUDA");
#else
  impl_->module = module;
  impl_->devices = std::move(devices);
  impl_->replicas.push_back(module);
  for (std::size_t k = 1; k < impl_->devices.size(); ++k) impl_->replicas.push_back(module.clone(impl_->devices[k]));
  sync_parameters();
#endif
}

Replicas::~Replicas() = default;

torch::Tensor Replicas::forward(const torch::Tensor& input, const Forward& forward) {
  auto& I = *impl_;
  const auto n = static_cast<std::int64_t>(I.devices.size());
  auto chunks = input.chunk(n, 0);
  const std::size_t used = chunks.size();  // a batch smaller than the device count uses fewer
  // the replicas follow the module's train/eval modes (frozen BatchNorms stay in eval)
  const auto master = I.module.ptr()->modules();
  for (std::size_t k = 1; k < used; ++k) {
    const auto mine = I.replicas[k].ptr()->modules();
    for (std::size_t i = 0; i < master.size() && i < mine.size(); ++i) mine[i]->train(master[i]->is_training());
  }
  std::vector<torch::Tensor> outputs(used);
  std::vector<std::exception_ptr> errors(used);
  auto run = [&](std::size_t k) {
    try {
#if GRAFT_HAS_CUDA
      c10::cuda::CUDAGuard guard(I.devices[k]);
#endif
      outputs[k] = forward(I.replicas[k], chunks[k].to(I.devices[k], /*non_blocking=*/true));
    } catch (...) {
      errors[k] = std::current_exception();
    }
  };
  const bool grad = torch::GradMode::is_enabled();
  std::vector<std::thread> threads;
  for (std::size_t k = 1; k < used; ++k)
    threads.emplace_back([&, k] {
      torch::AutoGradMode mode(grad);
      run(k);
    });
  run(0);
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  for (auto& o : outputs) o = o.to(I.devices[0]);
  return torch::cat(outputs, 0);
}

void Replicas::reduce_gradients() {
  torch::NoGradGuard no_grad;
  auto& I = *impl_;
  auto params = I.module.ptr()->parameters();
  for (std::size_t k = 1; k < I.replicas.size(); ++k) {
    auto theirs = I.replicas[k].ptr()->parameters();
    for (std::size_t i = 0; i < params.size(); ++i) {
      auto& g = theirs[i].mutable_grad();
      if (!g.defined()) continue;
      if (!params[i].requires_grad()) {  // frozen since the replicas last synced
        g = torch::Tensor();
        continue;
      }
      if (params[i].grad().defined()) params[i].mutable_grad().add_(g.to(params[i].device()));
      else params[i].mutable_grad() = g.to(params[i].device()).clone();
      g = torch::Tensor();
    }
  }
}

void Replicas::sync_parameters() {
  torch::NoGradGuard no_grad;
  auto& I = *impl_;
  const auto params = I.module.ptr()->parameters();
  const auto buffers = I.module.ptr()->buffers();
  for (std::size_t k = 1; k < I.replicas.size(); ++k) {
    auto p = I.replicas[k].ptr()->parameters();
    auto b = I.replicas[k].ptr()->buffers();
    for (std::size_t i = 0; i < params.size(); ++i) {
      p[i].copy_(params[i], /*non_blocking=*/true);
      p[i].set_requires_grad(params[i].requires_grad());
    }
    for (std::size_t i = 0; i < buffers.size(); ++i) b[i].copy_(buffers[i], /*non_blocking=*/true);
  }
}

}  // namespace graft
