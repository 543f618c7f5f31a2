// torchvision's ResNet family (models/resnet.py, 0.14): BasicBlock, Bottleneck, one
// make_layer and a table of variants. Keys, shapes and registration order are torchvision's
// (layer1.0.conv1.weight, layer1.0.downsample.0.weight, fc.bias, ...).
#include "common.h"

namespace graft::backbones {
namespace {

nn::Conv2d conv3x3(std::int64_t in, std::int64_t out, std::int64_t stride = 1, std::int64_t groups = 1) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).groups(groups).bias(false));
}

nn::Conv2d conv1x1(std::int64_t in, std::int64_t out, std::int64_t stride = 1) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, 1).stride(stride).bias(false));
}

class BasicBlockImpl : public Block<BasicBlockImpl> {
 public:
  void pretty_print(std::ostream& os) const override { os << "BasicBlock"; }
  BasicBlockImpl(std::int64_t inplanes, std::int64_t planes, std::int64_t stride, Stages downsample) {
    add("conv1", conv3x3(inplanes, planes, stride));
    add("bn1", nn::BatchNorm2d(planes));
    add("relu", nn::ReLU());
    add("conv2", conv3x3(planes, planes));
    add("bn2", nn::BatchNorm2d(planes));
    if (downsample) add("downsample", downsample);
  }
  torch::Tensor forward(torch::Tensor x) {
    auto out = call("relu", call("bn1", call("conv1", x)));
    out = call("bn2", call("conv2", out));
    return call("relu", out + (has_child("downsample") ? call("downsample", x) : x));
  }
};
TORCH_MODULE(BasicBlock);

class BottleneckImpl : public Block<BottleneckImpl> {
 public:
  void pretty_print(std::ostream& os) const override { os << "Bottleneck"; }
  static constexpr std::int64_t expansion = 4;
  BottleneckImpl(std::int64_t inplanes, std::int64_t planes, std::int64_t stride, std::int64_t groups,
                 std::int64_t base_width, Stages downsample) {
    const auto width = static_cast<std::int64_t>(static_cast<double>(planes) * (base_width / 64.0)) * groups;
    add("conv1", conv1x1(inplanes, width));
    add("bn1", nn::BatchNorm2d(width));
    add("conv2", conv3x3(width, width, stride, groups));
    add("bn2", nn::BatchNorm2d(width));
    add("conv3", conv1x1(width, planes * expansion));
    add("bn3", nn::BatchNorm2d(planes * expansion));
    add("relu", nn::ReLU());
    if (downsample) add("downsample", downsample);
  }
  torch::Tensor forward(torch::Tensor x) {
    auto out = call("relu", call("bn1", call("conv1", x)));
    out = call("relu", call("bn2", call("conv2", out)));
    out = call("bn3", call("conv3", out));
    return call("relu", out + (has_child("downsample") ? call("downsample", x) : x));
  }
};
TORCH_MODULE(Bottleneck);

struct Variant {
  bool bottleneck;
  std::int64_t layers[4];
  std::int64_t groups;
  std::int64_t width_per_group;
};

// The table of torchvision's resnet.py builders.
constexpr Variant kResNet18{false, {2, 2, 2, 2}, 1, 64};
constexpr Variant kResNet34{false, {3, 4, 6, 3}, 1, 64};
constexpr Variant kResNet50{true, {3, 4, 6, 3}, 1, 64};
constexpr Variant kResNet101{true, {3, 4, 23, 3}, 1, 64};
constexpr Variant kResNet152{true, {3, 8, 36, 3}, 1, 64};
constexpr Variant kResNeXt50_32x4d{true, {3, 4, 6, 3}, 32, 4};
constexpr Variant kWideResNet50_2{true, {3, 4, 6, 3}, 1, 64 * 2};

Stages make_layer(const Variant& v, std::int64_t& inplanes, std::int64_t planes, std::int64_t blocks,
                  std::int64_t stride) {
  const std::int64_t expansion = v.bottleneck ? BottleneckImpl::expansion : 1;
  Stages layer;
  for (std::int64_t i = 0; i < blocks; ++i) {
    const std::int64_t s = i == 0 ? stride : 1;
    Stages downsample{nullptr};
    if (i == 0 && (stride != 1 || inplanes != planes * expansion))
      downsample = sequential(conv1x1(inplanes, planes * expansion, stride), nn::BatchNorm2d(planes * expansion));
    if (v.bottleneck)
      push(layer, Bottleneck(inplanes, planes, s, v.groups, v.width_per_group, downsample));
    else
      push(layer, BasicBlock(inplanes, planes, s, downsample));
    inplanes = planes * expansion;
  }
  return layer;
}

Stages make_resnet(const Variant& v, const Config& c) {
  const auto num_classes = c.get<std::int64_t>("num_classes");
  std::int64_t inplanes = 64;
  Stages net;
  net->append("conv1", nn::AnyModule(nn::Conv2d(
                           nn::Conv2dOptions(in_channels(c), inplanes, 7).stride(2).padding(3).bias(false))));
  net->append("bn1", nn::AnyModule(nn::BatchNorm2d(inplanes)));
  net->append("relu", nn::AnyModule(nn::ReLU()));
  net->append("maxpool", nn::AnyModule(nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2).padding(1))));
  const std::int64_t planes[4] = {64, 128, 256, 512};
  for (int i = 0; i < 4; ++i)
    net->append("layer" + std::to_string(i + 1),
                nn::AnyModule(make_layer(v, inplanes, planes[i], v.layers[i], i == 0 ? 1 : 2)));
  net->append("avgpool", nn::AnyModule(nn::AdaptiveAvgPool2d(1)));
  net->append("flatten", nn::AnyModule(nn::Flatten()));
  net->append("fc", nn::AnyModule(nn::Linear(inplanes, num_classes)));
  // BatchNorm already starts at weight 1, bias 0; the fc keeps LibTorch's (= PyTorch's) default.
  init_convs_kaiming_fan_out(*net);
  return net;
}

template <const Variant& V> Stages make(const Config& c) { return make_resnet(V, c); }

}  // namespace
}  // namespace graft::backbones

namespace gb = graft::backbones;

GRAFT_PLUGIN(backbone, "resnet18", gb::make<gb::kResNet18>, "ResNet-18, torchvision layout", GRAFT_TV_KEYS);
GRAFT_PLUGIN(backbone, "resnet34", gb::make<gb::kResNet34>, "ResNet-34, torchvision layout", GRAFT_TV_KEYS);
GRAFT_PLUGIN(backbone, "resnet50", gb::make<gb::kResNet50>, "ResNet-50, torchvision layout", GRAFT_TV_KEYS);
GRAFT_PLUGIN(backbone, "resnet101", gb::make<gb::kResNet101>, "ResNet-101, torchvision layout", GRAFT_TV_KEYS);
GRAFT_PLUGIN(backbone, "resnet152", gb::make<gb::kResNet152>, "ResNet-152, torchvision layout", GRAFT_TV_KEYS);
GRAFT_PLUGIN(backbone, "resnext50_32x4d", gb::make<gb::kResNeXt50_32x4d>,
             "ResNeXt-50 32x4d, torchvision layout", GRAFT_TV_KEYS);
GRAFT_PLUGIN(backbone, "wide_resnet50_2", gb::make<gb::kWideResNet50_2>,
             "Wide ResNet-50-2, torchvision layout", GRAFT_TV_KEYS);
