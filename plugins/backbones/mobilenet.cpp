// torchvision's MobileNetV2 (models/mobilenetv2.py, 0.14) at width 1.0: Conv2dNormActivation
// stages (conv, bn, ReLU6) and InvertedResidual blocks. Keys are torchvision's
// (features.0.0.weight, features.1.conv.0.0.weight, classifier.1.bias, ...).
#include "common.h"

namespace graft::backbones {
namespace {

// torchvision.ops.Conv2dNormActivation: an nn.Sequential of conv (no bias), BN and ReLU6.
Stages conv_bn_relu6(std::int64_t in, std::int64_t out, std::int64_t kernel = 3, std::int64_t stride = 1,
                     std::int64_t groups = 1) {
  return sequential(
      nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding((kernel - 1) / 2).groups(groups).bias(false)),
      nn::BatchNorm2d(out), nn::ReLU6());
}

class InvertedResidualImpl : public Block<InvertedResidualImpl> {
 public:
  void pretty_print(std::ostream& os) const override { os << "InvertedResidual"; }
  InvertedResidualImpl(std::int64_t in, std::int64_t out, std::int64_t stride, std::int64_t expand_ratio)
      : use_res_connect_(stride == 1 && in == out) {
    const auto hidden = in * expand_ratio;
    Stages conv;
    if (expand_ratio != 1) push(conv, conv_bn_relu6(in, hidden, 1));  // pointwise
    push(conv, conv_bn_relu6(hidden, hidden, 3, stride, hidden));     // depthwise
    push(conv, nn::Conv2d(nn::Conv2dOptions(hidden, out, 1).bias(false)));  // pointwise, linear
    push(conv, nn::BatchNorm2d(out));
    add("conv", conv);
  }
  torch::Tensor forward(torch::Tensor x) { return use_res_connect_ ? x + call("conv", x) : call("conv", x); }

 private:
  bool use_res_connect_;
};
TORCH_MODULE(InvertedResidual);

Stages make_mobilenet_v2(const Config& c) {
  const auto num_classes = c.get<std::int64_t>("num_classes");
  // t (expansion), c (channels), n (repeats), s (stride of the first)
  const std::int64_t setting[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                      {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  const std::int64_t last_channel = 1280;
  std::int64_t in = 32;
  Stages features;
  push(features, conv_bn_relu6(in_channels(c), in, 3, 2));
  for (const auto& [t, ch, n, s] : setting) {
    for (std::int64_t i = 0; i < n; ++i) {
      push(features, InvertedResidual(in, ch, i == 0 ? s : 1, t));
      in = ch;
    }
  }
  push(features, conv_bn_relu6(in, last_channel, 1));

  Stages net;
  net->append("features", nn::AnyModule(features));
  // torchvision's forward: adaptive_avg_pool2d and flatten (no tensors).
  net->append("avgpool", nn::AnyModule(nn::AdaptiveAvgPool2d(1)));
  net->append("flatten", nn::AnyModule(nn::Flatten()));
  net->append("classifier", nn::AnyModule(sequential(nn::Dropout(c.get<double>("dropout")),
                                                     nn::Linear(last_channel, num_classes))));
  init_convs_kaiming_fan_out(*net);
  init_linears_normal(*net);
  return net;
}

}  // namespace
}  // namespace graft::backbones

GRAFT_PLUGIN(backbone, "mobilenet_v2", graft::backbones::make_mobilenet_v2, "MobileNetV2, torchvision layout",
             GRAFT_TV_KEYS, graft::KeySpec("dropout", 0.2, "dropout before the classifier").min(0).max(1));
