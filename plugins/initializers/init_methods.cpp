// The torch.nn.init methods that need no fan: fixed distributions, constants and the
// structured fills (eye, dirac, sparse). Keys, defaults and results follow Python's
// torch.nn.init of torch 1.13; init_scaled.cpp holds the fan- and gain-scaled ones.
#include <torch/torch.h>

#include <cmath>

#include "common.h"

namespace {

using graft::Config;
using graft::InitFn;
using namespace graft::init;

InitFn make_uniform(const Config& c) {
  const auto [a, b] = interval(c, "a", "b");
  return any_rank("uniform", [a = a, b = b](torch::Tensor& t) { t.uniform_(a, b); });
}

InitFn make_normal(const Config& c) {
  const auto mean = c.get<double>("mean"), std = c.get<double>("std");
  return any_rank("normal", [=](torch::Tensor& t) { t.normal_(mean, std); });
}

// Python's inverse-CDF method, step for step (LibTorch 1.13 has no trunc_normal_): draw
// uniformly between the CDF values of a and b, map back through erfinv, clamp what rounding
// pushed out.
InitFn make_trunc_normal(const Config& c) {
  const auto mean = c.get<double>("mean"), std = c.get<double>("std");
  const auto [a, b] = interval(c, "a", "b");
  auto cdf = [](double x) { return (1. + std::erf(x / std::sqrt(2.))) / 2.; };
  const double l = cdf((a - mean) / std), u = cdf((b - mean) / std);
  return any_rank("trunc_normal", [=, a = a, b = b](torch::Tensor& t) {
    t.uniform_(2 * l - 1, 2 * u - 1);
    t.erfinv_();
    t.mul_(std * std::sqrt(2.));
    t.add_(mean);
    t.clamp_(a, b);
  });
}

InitFn make_constant(const Config& c) {
  const auto val = c.get<double>("val");  // Python accepts inf and nan here too
  return any_rank("constant", [=](torch::Tensor& t) { t.fill_(val); });
}

InitFn make_ones(const Config&) {
  return any_rank("ones", [](torch::Tensor& t) { t.fill_(1); });
}

InitFn make_zeros(const Config&) {
  return any_rank("zeros", [](torch::Tensor& t) { t.zero_(); });
}

InitFn make_eye(const Config&) {
  return guarded("eye", 2, 2, [](torch::Tensor& t) {
    t.copy_(torch::eye(t.size(0), t.size(1), t.options()));
  });
}

// Identity convolutions; with groups, each group of output channels gets its own identity
// over the input channels, as Python's dirac_(groups=...) does.
InitFn make_dirac(const Config& c) {
  const auto groups = c.get<std::int64_t>("groups");
  return guarded("dirac", 3, 5, [groups](torch::Tensor& t) {
    if (t.size(0) % groups != 0)
      throw graft::Error::usage("dirac with groups=" + std::to_string(groups) +
                                " needs dimension 0 divisible by " + std::to_string(groups) +
                                ", got " + shape_of(t));
    const auto per_group = t.size(0) / groups;
    const auto min_dim = std::min(per_group, t.size(1));
    t.zero_();
    for (std::int64_t g = 0; g < groups; ++g) {
      for (std::int64_t d = 0; d < min_dim; ++d) {
        std::vector<torch::indexing::TensorIndex> at{g * per_group + d, d};
        for (std::int64_t k = 2; k < t.dim(); ++k) at.emplace_back(t.size(k) / 2);
        t.index_put_(at, 1);
      }
    }
  });
}

// Martens (2010): N(0, std) everywhere, then ceil(sparsity * rows) zeros in each column, at
// rows drawn afresh for every column.
InitFn make_sparse(const Config& c) {
  const auto sparsity = c.get<double>("sparsity");
  const auto std = c.get<double>("std");
  return guarded("sparse", 2, 2, [=](torch::Tensor& t) {
    const auto rows = t.size(0), cols = t.size(1);
    const auto num_zeros = static_cast<std::int64_t>(std::ceil(sparsity * rows));
    t.normal_(0, std);
    for (std::int64_t col = 0; col < cols; ++col) {
      const auto zero_rows = torch::randperm(rows, t.options().dtype(torch::kLong)).slice(0, 0, num_zeros);
      t.select(1, col).index_fill_(0, zero_rows, 0);
    }
  });
}

}  // namespace

GRAFT_PLUGIN(initializer, "uniform", make_uniform, "U(a, b), as nn.init.uniform_",
             graft::KeySpec("a", 0.0, "lower bound").finite(),
             graft::KeySpec("b", 1.0, "upper bound").finite());
GRAFT_PLUGIN(initializer, "normal", make_normal, "N(mean, std^2), as nn.init.normal_",
             graft::KeySpec("mean", 0.0, "mean").finite(),
             graft::KeySpec("std", 1.0, "standard deviation").greater_than(0).finite());
GRAFT_PLUGIN(initializer, "trunc_normal", make_trunc_normal,
             "N(mean, std^2) truncated to [a, b], as nn.init.trunc_normal_",
             graft::KeySpec("mean", 0.0, "mean of the normal distribution").finite(),
             graft::KeySpec("std", 1.0, "standard deviation of the normal distribution").greater_than(0).finite(),
             graft::KeySpec("a", -2.0, "lower cut-off (a value, not a number of std)").finite(),
             graft::KeySpec("b", 2.0, "upper cut-off (a value, not a number of std)").finite());
GRAFT_PLUGIN(initializer, "constant", make_constant, "every element = val, as nn.init.constant_",
             graft::KeySpec::required_key("val", graft::ValueType::number, "the value"));
GRAFT_PLUGIN(initializer, "ones", make_ones, "every element = 1, as nn.init.ones_");
GRAFT_PLUGIN(initializer, "zeros", make_zeros, "every element = 0, as nn.init.zeros_");
GRAFT_PLUGIN(initializer, "eye", make_eye, "the identity matrix (2-D tensors), as nn.init.eye_");
GRAFT_PLUGIN(initializer, "dirac", make_dirac,
             "identity convolutions (3-5-D tensors), as nn.init.dirac_",
             graft::KeySpec("groups", 1, "groups of output channels, each with its own identity").min(1));
GRAFT_PLUGIN(initializer, "sparse", make_sparse,
             "N(0, std^2) with a fraction of each column zeroed (2-D tensors), as nn.init.sparse_",
             graft::KeySpec::required_key("sparsity", graft::ValueType::number, "fraction of each column set to zero")
                 .min(0)
                 .less_than(1),
             graft::KeySpec("std", 0.01, "standard deviation of the non-zero values").greater_than(0).finite());
