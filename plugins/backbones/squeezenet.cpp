// torchvision's SqueezeNet 1.0 and 1.1 (models/squeezenet.py, 0.14): Fire modules in a
// features Sequential, and a convolutional classifier.
#include "common.h"

namespace graft::backbones {
namespace {

class FireImpl : public Block<FireImpl> {
 public:
  void pretty_print(std::ostream& os) const override { os << "Fire"; }
  FireImpl(std::int64_t in, std::int64_t squeeze, std::int64_t expand1x1, std::int64_t expand3x3) {
    add("squeeze", nn::Conv2d(nn::Conv2dOptions(in, squeeze, 1)));
    add("squeeze_activation", nn::ReLU());
    add("expand1x1", nn::Conv2d(nn::Conv2dOptions(squeeze, expand1x1, 1)));
    add("expand1x1_activation", nn::ReLU());
    add("expand3x3", nn::Conv2d(nn::Conv2dOptions(squeeze, expand3x3, 3).padding(1)));
    add("expand3x3_activation", nn::ReLU());
  }
  torch::Tensor forward(torch::Tensor x) {
    x = call("squeeze_activation", call("squeeze", x));
    return torch::cat({call("expand1x1_activation", call("expand1x1", x)),
                       call("expand3x3_activation", call("expand3x3", x))},
                      1);
  }
};
TORCH_MODULE(Fire);

nn::MaxPool2d pool() { return nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2).ceil_mode(true)); }

Stages features_1_0(std::int64_t in) {
  return sequential(nn::Conv2d(nn::Conv2dOptions(in, 96, 7).stride(2)), nn::ReLU(), pool(), Fire(96, 16, 64, 64),
                    Fire(128, 16, 64, 64), Fire(128, 32, 128, 128), pool(), Fire(256, 32, 128, 128),
                    Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), pool(),
                    Fire(512, 64, 256, 256));
}

Stages features_1_1(std::int64_t in) {
  return sequential(nn::Conv2d(nn::Conv2dOptions(in, 64, 3).stride(2)), nn::ReLU(), pool(), Fire(64, 16, 64, 64),
                    Fire(128, 16, 64, 64), pool(), Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), pool(),
                    Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256),
                    Fire(512, 64, 256, 256));
}

template <Stages (*Features)(std::int64_t)> Stages make(const Config& c) {
  const auto num_classes = c.get<std::int64_t>("num_classes");
  auto final_conv = nn::Conv2d(nn::Conv2dOptions(512, num_classes, 1));
  Stages net;
  net->append("features", nn::AnyModule(Features(in_channels(c))));
  net->append("classifier", nn::AnyModule(sequential(nn::Dropout(c.get<double>("dropout")), final_conv, nn::ReLU(),
                                                     nn::AdaptiveAvgPool2d(1))));
  net->append("flatten", nn::AnyModule(nn::Flatten()));

  // torchvision: kaiming_uniform_ on every conv but the last, normal_(0, 0.01) on the last.
  for_each<nn::Conv2dImpl>(*net, [&](nn::Conv2dImpl& conv) {
    if (&conv == final_conv.get())
      conv.weight.normal_(0.0, 0.01);
    else
      nn::init::kaiming_uniform_(conv.weight);
    conv.bias.zero_();
  });
  return net;
}

}  // namespace
}  // namespace graft::backbones

namespace gb = graft::backbones;

GRAFT_PLUGIN(backbone, "squeezenet1_0", gb::make<gb::features_1_0>, "SqueezeNet 1.0, torchvision layout",
             GRAFT_TV_KEYS, graft::KeySpec("dropout", 0.5, "dropout before the final convolution").min(0).max(1));
GRAFT_PLUGIN(backbone, "squeezenet1_1", gb::make<gb::features_1_1>, "SqueezeNet 1.1, torchvision layout",
             GRAFT_TV_KEYS, graft::KeySpec("dropout", 0.5, "dropout before the final convolution").min(0).max(1));
