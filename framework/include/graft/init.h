// Initializer plugins: one torch.nn.init method each. A recipe's `init:` rules choose
// which tensors they fill (by module type, name pattern, only what was not loaded).
//
//   static graft::InitFn make_normal(const graft::Config& c) {
//     const double mean = c.get<double>("mean"), std = c.get<double>("std");
//     return [=](torch::Tensor& t) { torch::nn::init::normal_(t, mean, std); };
//   }
//   GRAFT_PLUGIN(initializer, "normal", make_normal, "N(mean, std^2)",
//                graft::KeySpec("mean", 0.0, "mean"), graft::KeySpec("std", 1.0, "standard deviation"));
#pragma once

#include <functional>

#include <torch/types.h>

#include "graft/plugin.h"

namespace graft {

/// Fills a tensor in place. graft calls it under torch::NoGradGuard, on the tensor's own
/// device and dtype; it must only use torch's random generator (seeded by the recipe).
using InitFn = std::function<void(torch::Tensor&)>;

template <> struct ProductOf<Kind::initializer> { using type = InitFn; };

}  // namespace graft
