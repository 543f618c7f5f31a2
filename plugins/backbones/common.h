// What the torchvision backbone families share: their keys, nn.Sequential-style
// containers, torchvision's weight initialisations, and BasicConv2d (GoogLeNet, Inception).
// Internal to the backbones library; not part of the SDK.
#pragma once

#include <string>

#include <torch/torch.h>

#include <graft/model.h>

namespace graft::backbones {

namespace nn = torch::nn;

/// Appends `module` under the next index ("0", "1", ...), as nn.Sequential names its children.
template <class M> void push(Stages& stages, M module) {
  stages->append(std::to_string(stages->size()), nn::AnyModule(std::move(module)));
}

template <class... M> Stages sequential(M... modules) {
  Stages s;
  (push(s, std::move(modules)), ...);
  return s;
}

/// Calls f(impl) for every module of type Impl in the tree under `root` (root included).
template <class Impl, class F> void for_each(nn::Module& root, F&& f) {
  torch::NoGradGuard no_grad;
  for (const auto& m : root.modules())
    if (auto* impl = dynamic_cast<Impl*>(m.get())) f(*impl);
}

/// kaiming_normal_(mode="fan_out", nonlinearity="relu") on every conv, zero conv biases.
inline void init_convs_kaiming_fan_out(nn::Module& root) {
  for_each<nn::Conv2dImpl>(root, [](nn::Conv2dImpl& conv) {
    nn::init::kaiming_normal_(conv.weight, 0.0, torch::kFanOut, torch::kReLU);
    if (conv.bias.defined()) conv.bias.zero_();
  });
}

/// normal_(0, 0.01) on every linear weight, zero biases (VGG, MobileNetV2).
inline void init_linears_normal(nn::Module& root, double std = 0.01) {
  for_each<nn::LinearImpl>(root, [std](nn::LinearImpl& fc) {
    fc.weight.normal_(0.0, std);
    fc.bias.zero_();
  });
}

/// trunc_normal_(std, a=-2, b=2) on every conv and linear weight (GoogLeNet, Inception v3);
/// `std_of` picks the deviation per module path, as torchvision's `stddev` attributes do.
template <class StdOf> void init_trunc_normal(nn::Module& root, StdOf std_of) {
  torch::NoGradGuard no_grad;
  for (const auto& item : root.named_modules()) {
    torch::Tensor w;
    if (auto* conv = item.value()->as<nn::Conv2d>()) w = conv->weight;
    if (auto* fc = item.value()->as<nn::Linear>()) w = fc->weight;
    if (w.defined()) w.normal_(0.0, std_of(item.key())).clamp_(-2.0, 2.0);
  }
}

/// Conv2d (no bias) + BatchNorm2d(eps=0.001) + ReLU: GoogLeNet's and Inception v3's BasicConv2d.
class BasicConv2dImpl : public Block<BasicConv2dImpl> {
 public:
  void pretty_print(std::ostream& os) const override { os << "BasicConv2d"; }
  explicit BasicConv2dImpl(nn::Conv2dOptions options) {
    const auto out = options.out_channels();
    add("conv", nn::Conv2d(options.bias(false)));
    add("bn", nn::BatchNorm2d(nn::BatchNorm2dOptions(out).eps(0.001)));
  }
  torch::Tensor forward(torch::Tensor x) { return torch::relu(call("bn", call("conv", x))); }
};
TORCH_MODULE(BasicConv2d);

inline BasicConv2d basic_conv(std::int64_t in, std::int64_t out, torch::ExpandingArray<2> kernel,
                              torch::ExpandingArray<2> stride = 1, torch::ExpandingArray<2> padding = 0) {
  return BasicConv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding));
}

/// GoogLeNet's and Inception v3's transform_input: maps ImageNet-normalised inputs to the
/// (x - 0.5) / 0.5 normalisation their original weights were trained with. No tensors.
class TransformInputImpl : public Block<TransformInputImpl> {
 public:
  void pretty_print(std::ostream& os) const override { os << "TransformInput"; }
  torch::Tensor forward(torch::Tensor x) {
    return torch::cat({x.select(1, 0).unsqueeze(1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5,
                       x.select(1, 1).unsqueeze(1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5,
                       x.select(1, 2).unsqueeze(1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5},
                      1);
  }
};
TORCH_MODULE(TransformInput);

/// Replaces the input channels of the first conv of a family (`in_channels`): the first
/// conv is built with this many inputs and nothing else changes.
inline std::int64_t in_channels(const Config& c) { return c.get<std::int64_t>("in_channels"); }

}  // namespace graft::backbones

/// The keys every torchvision backbone takes.
#define GRAFT_TV_KEYS                                                        \
  graft::KeySpec("num_classes", 1000, "output classes").min(1),              \
      graft::KeySpec("in_channels", 3, "input channels of the first convolution").min(1)
