// What losses and metrics check about a batch before LibTorch sees it: logits [N, K] and
// integer class indices [N] in [0, K). A wrong batch is the user's data or model (a head
// with too few classes, labels counted from 1), so it is a one-line usage error naming the
// plugin, never a LibTorch assertion with a C++ backtrace.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <sstream>
#include <string>

#include <graft/error.h>

namespace graft::metrics {

inline std::string shape_str(const torch::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

/// Checks shapes and dtypes, then that every target (other than `ignore_index`) names one
/// of the K classes. Returns the target as int64 on the output's device.
inline torch::Tensor checked_target(const std::string& who, const torch::Tensor& output, const torch::Tensor& target,
                                    std::optional<std::int64_t> ignore_index = std::nullopt) {
  if (output.dim() != 2 || !output.is_floating_point())
    throw Error::usage(who + ": expects floating-point logits [N, K], got " + std::string(output.dtype().name()) +
                       " " + shape_str(output));
  if (target.dim() != 1 || target.size(0) != output.size(0))
    throw Error::usage(who + ": expects targets [N] = [" + std::to_string(output.size(0)) +
                       "] (one class index per sample), got " + shape_str(target));
  if (target.is_floating_point() || target.is_complex() || target.scalar_type() == torch::kBool)
    throw Error::usage(who + ": expects integer class indices as targets, got " +
                       std::string(target.dtype().name()));
  const auto t = target.to(output.device(), torch::kLong);
  const std::int64_t k = output.size(1);
  auto bad = (t < 0) | (t >= k);
  if (ignore_index) bad &= t != *ignore_index;
  if (bad.any().item<bool>()) {
    const auto i = bad.nonzero()[0][0].item<std::int64_t>();
    throw Error::usage(who + ": target " + std::to_string(t[i].item<std::int64_t>()) + " (sample " +
                       std::to_string(i) + " of the batch) is not a class of the model's " + std::to_string(k) +
                       " outputs [0, " + std::to_string(k) + ")");
  }
  return t;
}

}  // namespace graft::metrics
