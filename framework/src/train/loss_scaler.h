// Dynamic loss scaling for fp16 training, with torch.cuda.amp.GradScaler's defaults: the
// loss is multiplied by `scale` before backward; before the step the gradients are divided
// by it, and a step whose gradients overflowed (inf or nan) is skipped and the scale
// halved; after `growth_interval` good steps in a row the scale doubles.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "graft/state.h"

namespace graft::train {

class LossScaler : public Stateful {
 public:
  explicit LossScaler(bool enabled, double init_scale = 65536.0, double growth_factor = 2.0, double backoff_factor = 0.5,
                      std::int64_t growth_interval = 2000);

  bool enabled() const { return enabled_; }
  double scale() const { return scale_; }
  /// `loss` times the scale (the loss itself when disabled).
  torch::Tensor scaled(const torch::Tensor& loss) const;
  /// Divides every defined gradient of `params` by the scale, in place, and tells whether
  /// all of them are finite. The check accumulates into one found-inf tensor on the
  /// gradients' device and reads it once (one synchronisation per step, not one per tensor).
  bool unscale(const std::vector<torch::Tensor>& params) const;
  /// After a step: `finite` from unscale(). Backs off or grows the scale.
  void update(bool finite);

  void save_state(State& out) const override;
  void load_state(const State& in) override;

 private:
  bool enabled_;
  double scale_;
  double growth_factor_, backoff_factor_;
  std::int64_t growth_interval_;
  std::int64_t good_steps_ = 0;
};

}  // namespace graft::train
