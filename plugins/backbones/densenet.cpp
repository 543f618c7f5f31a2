// torchvision's DenseNet family (models/densenet.py, 0.14): _DenseLayer, _DenseBlock,
// _Transition and a table of variants. Keys are torchvision's current ones
// (features.denseblock1.denselayer1.norm1.weight); the published weights use the older
// "norm.1" form, which torchvision renames when it loads them.
#include <vector>

#include "common.h"

namespace graft::backbones {
namespace {

class DenseLayerImpl : public Block<DenseLayerImpl> {
 public:
  void pretty_print(std::ostream& os) const override { os << "_DenseLayer"; }
  DenseLayerImpl(std::int64_t in, std::int64_t growth_rate, std::int64_t bn_size, double drop_rate)
      : drop_rate_(drop_rate) {
    add("norm1", nn::BatchNorm2d(in));
    add("relu1", nn::ReLU());
    add("conv1", nn::Conv2d(nn::Conv2dOptions(in, bn_size * growth_rate, 1).bias(false)));
    add("norm2", nn::BatchNorm2d(bn_size * growth_rate));
    add("relu2", nn::ReLU());
    add("conv2", nn::Conv2d(nn::Conv2dOptions(bn_size * growth_rate, growth_rate, 3).padding(1).bias(false)));
  }
  // The input is the concatenation of all earlier features of the block.
  torch::Tensor forward(torch::Tensor x) {
    auto out = call("conv1", call("relu1", call("norm1", x)));
    out = call("conv2", call("relu2", call("norm2", out)));
    if (drop_rate_ > 0) out = torch::dropout(out, drop_rate_, this->is_training());
    return out;
  }

 private:
  double drop_rate_;
};
TORCH_MODULE(DenseLayer);

// torchvision's _DenseBlock is an nn.ModuleDict whose forward concatenates each layer's
// output to the features so far.
class DenseBlockImpl : public Block<DenseBlockImpl> {
 public:
  void pretty_print(std::ostream& os) const override { os << "_DenseBlock"; }
  DenseBlockImpl(std::int64_t layers, std::int64_t in, std::int64_t bn_size, std::int64_t growth_rate,
                 double drop_rate) {
    for (std::int64_t i = 0; i < layers; ++i) {
      names_.push_back("denselayer" + std::to_string(i + 1));
      add(names_.back(), DenseLayer(in + i * growth_rate, growth_rate, bn_size, drop_rate));
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    std::vector<torch::Tensor> features{x};
    for (const auto& name : names_) features.push_back(call(name, torch::cat(features, 1)));
    return torch::cat(features, 1);
  }

 private:
  std::vector<std::string> names_;
};
TORCH_MODULE(DenseBlock);

struct Variant {
  std::int64_t growth_rate;
  std::int64_t blocks[4];
  std::int64_t num_init_features;
};

constexpr Variant kDenseNet121{32, {6, 12, 24, 16}, 64};
constexpr Variant kDenseNet161{48, {6, 12, 36, 24}, 96};
constexpr Variant kDenseNet169{32, {6, 12, 32, 32}, 64};
constexpr Variant kDenseNet201{32, {6, 12, 48, 32}, 64};

Stages make_densenet(const Variant& v, const Config& c) {
  const auto num_classes = c.get<std::int64_t>("num_classes");
  const auto drop_rate = c.get<double>("dropout");
  const std::int64_t bn_size = 4;
  auto features = Stages();
  features->append("conv0", nn::AnyModule(nn::Conv2d(nn::Conv2dOptions(in_channels(c), v.num_init_features, 7)
                                                          .stride(2)
                                                          .padding(3)
                                                          .bias(false))));
  features->append("norm0", nn::AnyModule(nn::BatchNorm2d(v.num_init_features)));
  features->append("relu0", nn::AnyModule(nn::ReLU()));
  features->append("pool0", nn::AnyModule(nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2).padding(1))));
  std::int64_t num = v.num_init_features;
  for (int i = 0; i < 4; ++i) {
    const auto index = std::to_string(i + 1);
    features->append("denseblock" + index,
                     nn::AnyModule(DenseBlock(v.blocks[i], num, bn_size, v.growth_rate, drop_rate)));
    num += v.blocks[i] * v.growth_rate;
    if (i == 3) break;
    Stages transition;
    transition->append("norm", nn::AnyModule(nn::BatchNorm2d(num)));
    transition->append("relu", nn::AnyModule(nn::ReLU()));
    transition->append("conv", nn::AnyModule(nn::Conv2d(nn::Conv2dOptions(num, num / 2, 1).bias(false))));
    transition->append("pool", nn::AnyModule(nn::AvgPool2d(nn::AvgPool2dOptions(2).stride(2))));
    features->append("transition" + index, nn::AnyModule(transition));
    num /= 2;
  }
  features->append("norm5", nn::AnyModule(nn::BatchNorm2d(num)));

  Stages net;
  net->append("features", nn::AnyModule(features));
  // torchvision's forward: F.relu, adaptive_avg_pool2d, flatten (no tensors).
  net->append("relu", nn::AnyModule(nn::ReLU()));
  net->append("avgpool", nn::AnyModule(nn::AdaptiveAvgPool2d(1)));
  net->append("flatten", nn::AnyModule(nn::Flatten()));
  net->append("classifier", nn::AnyModule(nn::Linear(num, num_classes)));

  for_each<nn::Conv2dImpl>(*net, [](nn::Conv2dImpl& conv) { nn::init::kaiming_normal_(conv.weight); });
  for_each<nn::LinearImpl>(*net, [](nn::LinearImpl& fc) { fc.bias.zero_(); });
  return net;
}

template <const Variant& V> Stages make(const Config& c) { return make_densenet(V, c); }

}  // namespace
}  // namespace graft::backbones

namespace gb = graft::backbones;

#define GRAFT_DENSENET_KEYS \
  GRAFT_TV_KEYS, graft::KeySpec("dropout", 0.0, "dropout after each dense layer (drop_rate)").min(0).max(1)

GRAFT_PLUGIN(backbone, "densenet121", gb::make<gb::kDenseNet121>, "DenseNet-121, torchvision layout",
             GRAFT_DENSENET_KEYS);
GRAFT_PLUGIN(backbone, "densenet161", gb::make<gb::kDenseNet161>, "DenseNet-161, torchvision layout",
             GRAFT_DENSENET_KEYS);
GRAFT_PLUGIN(backbone, "densenet169", gb::make<gb::kDenseNet169>, "DenseNet-169, torchvision layout",
             GRAFT_DENSENET_KEYS);
GRAFT_PLUGIN(backbone, "densenet201", gb::make<gb::kDenseNet201>, "DenseNet-201, torchvision layout",
             GRAFT_DENSENET_KEYS);
