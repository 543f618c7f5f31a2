// calculate_gain: torch.nn.init.calculate_gain as a pure function, so that recipes can ask
// for "the gain of relu" by name and tests can hold it to Python's values.
#pragma once

#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace graft::init {

/// The names torch.nn.init.calculate_gain accepts (torch 1.13), in its order.
inline const std::vector<std::string>& gain_nonlinearities() {
  static const std::vector<std::string> names{
      "linear",          "conv1d",           "conv2d",           "conv3d",  "conv_transpose1d",
      "conv_transpose2d", "conv_transpose3d", "sigmoid",          "tanh",    "relu",
      "leaky_relu",      "selu"};
  return names;
}

/// The recommended gain for `nonlinearity`; `param` is leaky_relu's negative slope (Python's
/// default for param=None is 0.01) and is ignored by the others. nullopt for a name Python
/// refuses with "Unsupported nonlinearity". Names are case-sensitive, as in Python.
inline std::optional<double> calculate_gain(std::string_view nonlinearity, double param = 0.01) {
  if (nonlinearity == "linear" || nonlinearity == "conv1d" || nonlinearity == "conv2d" ||
      nonlinearity == "conv3d" || nonlinearity == "conv_transpose1d" ||
      nonlinearity == "conv_transpose2d" || nonlinearity == "conv_transpose3d" ||
      nonlinearity == "sigmoid")
    return 1.0;
  if (nonlinearity == "tanh") return 5.0 / 3;
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") return std::sqrt(2.0 / (1 + param * param));
  // Empirical, and kept by torch for gradient flow (pytorch/pytorch#50664); self-normalising
  // nets want "linear" instead.
  if (nonlinearity == "selu") return 3.0 / 4;
  return std::nullopt;
}

}  // namespace graft::init
