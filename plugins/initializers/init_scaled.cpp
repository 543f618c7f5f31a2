// The torch.nn.init methods scaled by a tensor's fans and a gain: xavier_*, kaiming_* and
// orthogonal. Keys, defaults and results follow Python's torch.nn.init of torch 1.13.
// LibTorch's own kaiming_* know no 'selu' and its orthogonal_ draws in float on the CPU
// whatever the tensor, so the few lines are written out here as Python writes them.
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "common.h"
#include "gain.h"

namespace {

using graft::Config;
using graft::InitFn;
using namespace graft::init;

std::string known_nonlinearities() {
  std::string s;
  for (const auto& n : gain_nonlinearities()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

double gain_of(const Config& c, const std::string& key, const std::string& nonlinearity, double param) {
  if (const auto g = calculate_gain(nonlinearity, param)) return *g;
  const auto close = graft::closest_match(nonlinearity, gain_nonlinearities());
  c[key].fail("unsupported nonlinearity '" + nonlinearity + "'" +
              (close.empty() ? "" : " (did you mean '" + close + "'?)") + "; known: " + known_nonlinearities());
}

// `gain: 1.4`, or `gain_for: relu` (with `param:`, leaky_relu's slope) for calculate_gain's.
double gain_keys(const Config& c) {
  const auto gain_for = c.get<std::string>("gain_for");
  if (gain_for.empty()) {
    if (c.has("param")) c["param"].fail("is only used with gain_for (leaky_relu's negative slope)");
    return c.get<double>("gain");
  }
  if (c.has("gain")) c["gain_for"].fail("give either gain or gain_for, not both");
  return gain_of(c, "gain_for", gain_for, c.get<double>("param"));
}

struct Fans {
  double in, out;
};
// Python's _calculate_fan_in_and_fan_out: dim 1 is the input, dim 0 the output, every
// further dimension the receptive field.
Fans fans(const torch::Tensor& t) {
  double receptive = 1;
  for (std::int64_t d = 2; d < t.dim(); ++d) receptive *= static_cast<double>(t.size(d));
  return {static_cast<double>(t.size(1)) * receptive, static_cast<double>(t.size(0)) * receptive};
}

template <bool Uniform> InitFn make_xavier(const Config& c) {
  const auto gain = gain_keys(c);
  return at_least_2d(Uniform ? "xavier_uniform" : "xavier_normal", [gain](torch::Tensor& t) {
    const auto f = fans(t);
    const double std = gain * std::sqrt(2.0 / (f.in + f.out));
    if (Uniform) t.uniform_(-std::sqrt(3.0) * std, std::sqrt(3.0) * std);
    else t.normal_(0, std);
  });
}

template <bool Uniform> InitFn make_kaiming(const Config& c) {
  const auto a = c.get<double>("a");
  auto mode = c.get<std::string>("mode");
  std::transform(mode.begin(), mode.end(), mode.begin(), [](unsigned char ch) { return std::tolower(ch); });
  if (mode != "fan_in" && mode != "fan_out")
    c["mode"].fail("must be fan_in or fan_out, got '" + c.get<std::string>("mode") + "'");
  // Python passes `a` as leaky_relu's slope; the other nonlinearities ignore it.
  const auto gain = gain_of(c, "nonlinearity", c.get<std::string>("nonlinearity"), a);
  const bool fan_in = mode == "fan_in";
  return at_least_2d(Uniform ? "kaiming_uniform" : "kaiming_normal", [=](torch::Tensor& t) {
    const auto f = fans(t);
    const double std = gain / std::sqrt(fan_in ? f.in : f.out);
    if (Uniform) t.uniform_(-std::sqrt(3.0) * std, std::sqrt(3.0) * std);
    else t.normal_(0, std);
  });
}

// Saxe et al. (2013): QR of a Gaussian matrix, signs fixed by R's diagonal so the result is
// uniform over orthogonal matrices; trailing dimensions are flattened into columns.
InitFn make_orthogonal(const Config& c) {
  const auto gain = gain_keys(c);
  return at_least_2d("orthogonal", [gain](torch::Tensor& t) {
    const auto rows = t.size(0), cols = t.numel() / rows;
    auto flat = t.new_empty({rows, cols}).normal_(0, 1);
    if (rows < cols) flat.t_();
    auto [q, r] = torch::linalg_qr(flat);
    q.mul_(torch::diag(r, 0).sign());
    if (rows < cols) q.t_();
    t.copy_(q.reshape(t.sizes())).mul_(gain);
  });
}

#define GAIN_KEYS                                                                                \
  graft::KeySpec("gain", 1.0, "scaling factor").greater_than(0).finite(),                         \
      graft::KeySpec("gain_for", "", "a nonlinearity whose calculate_gain() replaces gain (relu, tanh, ...)"), \
      graft::KeySpec("param", 0.01, "leaky_relu's negative slope, with gain_for: leaky_relu").finite()

#define KAIMING_KEYS                                                                             \
  graft::KeySpec("a", 0.0, "negative slope of the rectifier after this layer (leaky_relu only)").finite(), \
      graft::KeySpec("mode", "fan_in", "fan_in keeps the forward pass' variance, fan_out the backward's"), \
      graft::KeySpec("nonlinearity", "leaky_relu", "the nonlinearity after this layer, as calculate_gain names it")

}  // namespace

GRAFT_PLUGIN(initializer, "xavier_uniform", make_xavier<true>,
             "Glorot uniform, U(-g*sqrt(6/(fan_in+fan_out)), +...), as nn.init.xavier_uniform_", GAIN_KEYS);
GRAFT_PLUGIN(initializer, "xavier_normal", make_xavier<false>,
             "Glorot normal, N(0, g^2*2/(fan_in+fan_out)), as nn.init.xavier_normal_", GAIN_KEYS);
GRAFT_PLUGIN(initializer, "kaiming_uniform", make_kaiming<true>,
             "He uniform, U(-g*sqrt(3/fan), +...), as nn.init.kaiming_uniform_", KAIMING_KEYS);
GRAFT_PLUGIN(initializer, "kaiming_normal", make_kaiming<false>,
             "He normal, N(0, g^2/fan), as nn.init.kaiming_normal_", KAIMING_KEYS);
GRAFT_PLUGIN(initializer, "orthogonal", make_orthogonal,
             "a (semi-)orthogonal matrix times gain, trailing dimensions flattened, as nn.init.orthogonal_",
             GAIN_KEYS);
