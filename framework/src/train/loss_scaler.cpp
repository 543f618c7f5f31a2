#include "loss_scaler.h"

namespace graft::train {

LossScaler::LossScaler(bool enabled, double init_scale, double growth_factor, double backoff_factor,
                       std::int64_t growth_interval)
    : enabled_(enabled),
      scale_(init_scale),
      growth_factor_(growth_factor),
      backoff_factor_(backoff_factor),
      growth_interval_(growth_interval) {}

torch::Tensor LossScaler::scaled(const torch::Tensor& loss) const { return enabled_ ? loss * scale_ : loss; }

bool LossScaler::unscale(const std::vector<torch::Tensor>& params) const {
  torch::NoGradGuard no_grad;
  torch::Tensor found_inf;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    p.mutable_grad().mul_(1.0 / scale_);
    const auto bad = torch::isfinite(p.grad()).logical_not().any();
    found_inf = found_inf.defined() ? found_inf.logical_or_(bad) : bad;
  }
  return !found_inf.defined() || !found_inf.item<bool>();
}

void LossScaler::update(bool finite) {
  if (!finite) {
    scale_ *= backoff_factor_;
    good_steps_ = 0;
  } else if (++good_steps_ == growth_interval_) {
    scale_ *= growth_factor_;
    good_steps_ = 0;
  }
}

void LossScaler::save_state(State& out) const {
  out.set("scale", scale_);
  out.set("good_steps", good_steps_);
}

void LossScaler::load_state(const State& in) {
  scale_ = in.get<double>("scale");
  good_steps_ = in.get<std::int64_t>("good_steps");
}

}  // namespace graft::train
