// Optimizer plugins. The recipe's `optimizer.groups` rules split the trainable parameters
// into groups (by glob on names, `bias` / `norm` shortcuts; first matching rule wins);
// the plugin's factory turns the groups into a graft::Optimizer. An optimizer plugin
// declares the keys `lr` and `weight_decay` (the groups' defaults) besides its own.
//
// graft::Optimizer is all the host knows of an optimizer: it steps it, reads and sets each
// group's lr and momentum (schedulers), appends groups (gradual unfreezing), prints its
// settings (`graft check`), and saves and restores its state by parameter in the layout
// of Python's `optimizer.state_dict()` (checkpoints). The built-ins (sgd, adam, adamw,
// rmsprop) implement it over LibTorch's optimizers; an optimizer of one's own (Lion, ...)
// implements it directly:
//
//   class Lion : public graft::Optimizer {
//     void step() override { ... for each group g, each param p with a grad: update ... }
//     std::size_t group_count() const override { return groups_.size(); }
//     ...
//   };
//   GRAFT_PLUGIN(optimizer, "lion", make_lion, "Lion (Chen et al. 2023)", graft::KeySpec("lr", 1e-4, "learning rate"));
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "graft/plugin.h"
#include "graft/state.h"

namespace graft {

struct ParamGroup {
  std::string name;                    ///< "default", the rule's index or pattern, "unfrozen@3"
  std::vector<std::string> names;      ///< parameter names, in state-dict order
  std::vector<torch::Tensor> params;
  double lr = 0;
  double weight_decay = 0;
  std::optional<double> momentum;      ///< a rule's own momentum, when it sets one
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;

  /// One update of every parameter that has a gradient (`.grad()` defined).
  virtual void step() = 0;

  virtual std::size_t group_count() const = 0;
  /// The parameters of a group, in the order they were given.
  virtual const std::vector<torch::Tensor>& params(std::size_t group) const = 0;
  /// Appends a group (parameters unfrozen during training); its settings as in the factory.
  virtual void add_group(const ParamGroup& group) = 0;
  /// Appends parameters to an existing group (unfrozen with that group's settings).
  virtual void add_params(std::size_t group, const std::vector<torch::Tensor>& params) = 0;

  virtual double lr(std::size_t group) const = 0;
  virtual void set_lr(std::size_t group, double lr) = 0;
  /// What a cyclic schedule varies as momentum: SGD's and RMSprop's momentum, Adam's beta1.
  /// nullopt (the default): the optimizer has none, and schedules leave it alone.
  virtual std::optional<double> momentum(std::size_t group) const {
    (void)group;
    return std::nullopt;
  }
  virtual void set_momentum(std::size_t group, double momentum) { (void)group, (void)momentum; }

  /// A group's settings under Python's names and in its order (lr, momentum, betas, eps,
  /// weight_decay, ...), without `params`: one entry of Python's `param_groups`, shown by
  /// `graft check` and saved with the checkpoint (resume takes settings from the recipe).
  virtual State group_options(std::size_t group) const = 0;

  /// A parameter's state under Python's names (SGD: momentum_buffer; Adam: step, exp_avg,
  /// exp_avg_sq): one entry of Python's `state`. Empty when it has none yet (no step taken).
  virtual State param_state(const torch::Tensor& param) const = 0;
  /// Restores what param_state() gave; tensors come on the CPU, share memory with the
  /// checkpoint's buffer (copy them) and must go to `param`'s device.
  virtual void load_param_state(const torch::Tensor& param, const State& state) = 0;

  /// Drops every parameter's gradient, as PyTorch 2's `zero_grad(set_to_none=True)`: the
  /// next backward writes them afresh instead of adding to zeros.
  void zero_grad();
};

/// Builds the optimizer for these groups; the plugin's own keys (momentum, betas, ...) are
/// its defaults, and a group's lr / weight_decay / momentum override them.
using OptimizerFactory = std::function<std::unique_ptr<Optimizer>(const std::vector<ParamGroup>&)>;

template <> struct ProductOf<Kind::optimizer> { using type = OptimizerFactory; };

inline void Optimizer::zero_grad() {
  for (std::size_t g = 0; g < group_count(); ++g)
    for (const auto& p : params(g))
      if (p.grad().defined()) p.mutable_grad().reset();
}

}  // namespace graft
