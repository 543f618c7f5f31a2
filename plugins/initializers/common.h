// What the initializer plugins share: the a < b check of two keys, and the tensor-rank guard
// that turns "this method does not apply to that tensor" into one line. (Each key's own
// range, finite and > 0 say, is declared with its KeySpec.)
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <utility>

#include <graft/init.h>

namespace graft::init {

inline std::string num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

inline std::string shape_of(const torch::Tensor& t) {
  std::string s = "[";
  for (std::int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

/// Reads c[lo] < c[hi]; a violation is reported at whichever of the two the recipe wrote.
inline std::pair<double, double> interval(const Config& c, const std::string& lo, const std::string& hi) {
  const auto a = c.get<double>(lo), b = c.get<double>(hi);
  if (!(a < b)) {
    const auto& at = c.has(hi) ? hi : lo;
    c[at].fail("needs " + lo + " < " + hi + ", got " + lo + "=" + num(a) + ", " + hi + "=" + num(b));
  }
  return {a, b};
}

/// An InitFn that records no gradient (graft already calls it so; a plugin used on its own
/// may not) and, when the method needs min_dim..max_dim dimensions, refuses other tensors
/// with one line naming the method and the shape. Empty tensors are left as they are, as
/// Python's kaiming does: there is nothing to fill and no fan to scale by.
template <class Fill>
InitFn guarded(std::string method, std::int64_t min_dim, std::int64_t max_dim, Fill fill) {
  return [method = std::move(method), min_dim, max_dim, fill](torch::Tensor& t) {
    if (t.dim() < min_dim || t.dim() > max_dim) {
      std::string need;
      if (min_dim == max_dim) need = "a " + std::to_string(min_dim) + "-D tensor";
      else if (max_dim == std::numeric_limits<std::int64_t>::max())
        need = "a tensor with at least " + std::to_string(min_dim) + " dimensions";
      else need = "a tensor with " + std::to_string(min_dim) + " to " + std::to_string(max_dim) + " dimensions";
      throw Error::usage(method + " needs " + need + ", got " + shape_of(t));
    }
    torch::NoGradGuard no_grad;
    if (t.numel() == 0) return;
    fill(t);
  };
}

template <class Fill> InitFn any_rank(std::string method, Fill fill) {
  return guarded(std::move(method), 0, std::numeric_limits<std::int64_t>::max(), std::move(fill));
}
template <class Fill> InitFn at_least_2d(std::string method, Fill fill) {
  return guarded(std::move(method), 2, std::numeric_limits<std::int64_t>::max(), std::move(fill));
}

}  // namespace graft::init
