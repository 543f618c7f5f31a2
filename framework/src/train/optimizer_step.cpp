#include "optimizer_step.h"

#include <algorithm>

#include <torch/nn/utils/clip_grad.h>

namespace graft::train {

std::vector<torch::Tensor> all_params(const Optimizer& optimizer) {
  std::vector<torch::Tensor> out;
  for (std::size_t g = 0; g < optimizer.group_count(); ++g)
    out.insert(out.end(), optimizer.params(g).begin(), optimizer.params(g).end());
  return out;
}

OptimizerStep::OptimizerStep(const Settings& settings, std::int64_t batches_per_epoch, Execution& execution,
                             LossScaler& scaler, Callbacks& callbacks)
    : settings_(settings), batches_(batches_per_epoch), execution_(execution), scaler_(scaler), callbacks_(callbacks) {}

void OptimizerStep::epoch_start(Optimizer& optimizer) {
  optimizer.zero_grad();
  in_group_ = 0;
}

bool OptimizerStep::backward(TrainContext& ctx, std::int64_t batch) {
  // the last group of an epoch may hold fewer batches: scale by what it really holds
  const std::int64_t group_start = batch - in_group_;
  const std::int64_t group_size = std::min(settings_.accumulate, batches_ - group_start);
  torch::Tensor loss = group_size > 1 ? ctx.loss / static_cast<double>(group_size) : ctx.loss;
  execution_.before_backward(in_group_ + 1 >= group_size);
  scaler_.scaled(loss).backward();
  execution_.after_backward();
  ++in_group_;
  callbacks_.each([&](Hook& h) { h.on_after_backward(ctx); });
  if (in_group_ < group_size) return false;
  in_group_ = 0;
  return true;
}

void OptimizerStep::step(TrainContext& ctx, TrainableSet& trainable) {
  Optimizer& optimizer = trainable.optimizer();
  // the parameters of the moment (unfreezing may have added some), when anything needs them
  const bool needs_params = scaler_.enabled() || settings_.clip_norm || settings_.clip_value;
  const auto params = needs_params ? all_params(optimizer) : std::vector<torch::Tensor>{};
  bool finite = true;
  if (scaler_.enabled()) {
    finite = scaler_.unscale(params);
    scaler_.update(finite);
  }
  if (finite) {  // an overflow skips the step (fp16 loss scaling)
    if (settings_.clip_norm) torch::nn::utils::clip_grad_norm_(params, *settings_.clip_norm);
    if (settings_.clip_value) torch::nn::utils::clip_grad_value_(params, *settings_.clip_value);
    callbacks_.each([&](Hook& h) { h.on_before_optimizer_step(ctx); });
    call_plugin(trainable.who(), trainable.where(), &ctx, [&] { optimizer.step(); });
    execution_.after_update();
  }
  optimizer.zero_grad();
  ++ctx.step;
  callbacks_.each([&](Hook& h) { h.on_after_optimizer_step(ctx); });
}

}  // namespace graft::train
