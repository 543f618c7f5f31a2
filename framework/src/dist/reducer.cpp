#include "dist/reducer.h"

#include <chrono>

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

namespace graft::dist {

struct Reducer::Bucket {
  std::vector<std::size_t> params;  ///< indices into params_, in bucket order
  std::size_t pending = 0;          ///< gradients not ready yet this step
  bool launched = false;
  torch::Tensor flat;               ///< the gradients, then one "had a gradient" flag per parameter
  Pending work;
};

struct Reducer::Hook : torch::autograd::FunctionPostHook {
  Hook(Reducer* r, std::size_t i) : reducer(r), index(i) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    reducer->ready(index);
    return outputs;
  }
  Reducer* reducer;
  std::size_t index;
};

Reducer::Reducer(Group& group, std::vector<torch::Tensor> params, std::size_t bucket_bytes)
    : group_(group), params_(std::move(params)), bucket_bytes_(bucket_bytes), hooked_(params_.size(), false),
      accumulators_(params_.size()), hook_keys_(params_.size(), 0) {
  rebuild();
}

Reducer::~Reducer() {
  for (std::size_t i = 0; i < accumulators_.size(); ++i)
    if (accumulators_[i]) accumulators_[i]->del_post_hook(hook_keys_[i]);
}

void Reducer::rebuild() {
  requires_.assign(params_.size(), false);
  bucket_of_.assign(params_.size(), -1);
  buckets_.clear();
  std::size_t bytes = 0;
  for (std::size_t k = params_.size(); k-- > 0;) {
    const auto& p = params_[k];
    if (!p.requires_grad()) continue;
    requires_[k] = true;
    if (!hooked_[k]) {
      accumulators_[k] = torch::autograd::impl::grad_accumulator(p);
      hook_keys_[k] = accumulators_[k]->add_post_hook(std::make_unique<Hook>(this, k));
      hooked_[k] = true;
    }
    const std::size_t size = static_cast<std::size_t>(p.numel()) * p.element_size();
    if (buckets_.empty() || (bytes + size > bucket_bytes_ && !buckets_.back()->params.empty())) {
      buckets_.push_back(std::make_unique<Bucket>());
      bytes = 0;
    }
    buckets_.back()->params.push_back(k);
    bucket_of_[k] = static_cast<int>(buckets_.size() - 1);
    bytes += size;
  }
}

void Reducer::prepare(bool sync) {
  armed_ = sync;
  if (!sync) return;
  bool changed = false;
  for (std::size_t k = 0; k < params_.size() && !changed; ++k) changed = params_[k].requires_grad() != requires_[k];
  if (changed) rebuild();
  for (auto& b : buckets_) {
    b->pending = b->params.size();
    b->launched = false;
  }
  next_launch_ = 0;
}

void Reducer::ready(std::size_t param) {
  if (!armed_ || bucket_of_[param] < 0) return;
  auto& b = *buckets_[static_cast<std::size_t>(bucket_of_[param])];
  if (b.pending > 0) --b.pending;
  // start every complete bucket in order
  while (next_launch_ < buckets_.size() && buckets_[next_launch_]->pending == 0) launch(*buckets_[next_launch_++]);
}

void Reducer::launch(Bucket& b) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  parts.reserve(b.params.size() + 1);
  std::vector<float> had;
  for (const auto k : b.params) {
    const auto& p = params_[k];
    const auto& g = p.grad();
    had.push_back(g.defined() ? 1.0f : 0.0f);
    parts.push_back(g.defined() ? g.reshape({-1}).to(torch::kFloat) : torch::zeros({p.numel()}, p.options().dtype(torch::kFloat)));
  }
  parts.push_back(torch::tensor(had, torch::TensorOptions().dtype(torch::kFloat).device(params_[b.params.front()].device())));
  b.flat = torch::cat(parts);
  b.work = group_.all_reduce_sum_async(b.flat, "all-reduce of gradients");
  b.launched = true;
}

void Reducer::finish() {
  if (!armed_) return;
  armed_ = false;
  // buckets held up by a parameter without a gradient this step, in order
  while (next_launch_ < buckets_.size()) launch(*buckets_[next_launch_++]);
  const auto t0 = std::chrono::steady_clock::now();
  for (auto& b : buckets_) b->work.wait();
  waited_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  torch::NoGradGuard no_grad;
  const double world = static_cast<double>(group_.size());
  for (auto& b : buckets_) {
    std::int64_t at = 0;
    const std::int64_t n_params = static_cast<std::int64_t>(b->params.size());
    const auto flags = b->flat.narrow(0, b->flat.numel() - n_params, n_params).cpu();
    for (std::size_t j = 0; j < b->params.size(); ++j) {
      auto& p = params_[b->params[j]];
      const auto n = p.numel();
      const bool used = flags[static_cast<std::int64_t>(j)].item<float>() > 0;
      if (used) {
        auto mean = b->flat.narrow(0, at, n).view(p.sizes()).div(world).to(p.scalar_type());
        if (p.grad().defined()) p.mutable_grad().copy_(mean);
        else p.mutable_grad() = mean.clone();
      }
      at += n;
    }
    b->flat = torch::Tensor();
  }
}

}  // namespace graft::dist
