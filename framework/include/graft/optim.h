// Optimizer plugins. The recipe's `optimizer.groups` rules split the trainable parameters
// into groups (by glob on names, `bias` / `norm` shortcuts; first matching rule wins);
// the plugin turns the groups into a LibTorch optimizer.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <torch/optim/optimizer.h>

#include "graft/plugin.h"

namespace graft {

struct ParamGroup {
  std::string name;                    ///< "default", the rule's index or pattern, "unfrozen@3"
  std::vector<std::string> names;      ///< parameter names, in state-dict order
  std::vector<torch::Tensor> params;
  double lr = 0;
  double weight_decay = 0;
  std::optional<double> momentum;      ///< a rule's own momentum, when it sets one
};

/// Builds the optimizer for these groups; the plugin's own keys (momentum, betas, ...) are
/// its defaults, and a group's lr / weight_decay / momentum override them.
using OptimizerFactory = std::function<std::unique_ptr<torch::optim::Optimizer>(const std::vector<ParamGroup>&)>;

template <> struct ProductOf<Kind::optimizer> { using type = OptimizerFactory; };

/// The key under which LibTorch's optimizers file a parameter's state (`state()`): its
/// TensorImpl's address, as a string in LibTorch 1.x and as the pointer in 2.x.
template <class Optimizer = torch::optim::Optimizer>
auto optimizer_state_key(const torch::Tensor& p) {
  using Key = typename std::remove_reference_t<decltype(std::declval<Optimizer&>().state())>::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;  // what c10::guts::to_string(ptr) gives
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

/// Drops the gradients of the optimizer's parameters, as PyTorch 2's
/// `zero_grad(set_to_none=True)`: the next backward writes them afresh instead of adding to
/// zeros (no memset, no read of the old values). The trainer's zero_grad.
inline void clear_grads(torch::optim::Optimizer& optimizer) {
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params())
      if (p.grad().defined()) p.mutable_grad().reset();
}

/// The lr / weight_decay / momentum a LibTorch param group holds (for reports and tests).
struct GroupSettings {
  double lr = 0;
  double weight_decay = 0;
  std::optional<double> momentum;
};
GroupSettings group_settings(const torch::optim::OptimizerParamGroup& group);

}  // namespace graft
