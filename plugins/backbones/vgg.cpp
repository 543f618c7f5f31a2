// torchvision's VGG family (models/vgg.py, 0.14): one make_features over a table of
// configurations, with and without batch norm. Keys are torchvision's (features.0.weight,
// classifier.6.bias, ...).
#include <vector>

#include "common.h"

namespace graft::backbones {
namespace {

constexpr std::int64_t M = 0;  // a 2x2 max-pool in a configuration

// torchvision's cfgs "A", "B", "D", "E".
const std::vector<std::int64_t> kVgg11{64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M};
const std::vector<std::int64_t> kVgg13{64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M};
const std::vector<std::int64_t> kVgg16{64,  64,  M,   128, 128, M,   256, 256, 256,
                                       M,   512, 512, 512, M,   512, 512, 512, M};
const std::vector<std::int64_t> kVgg19{64,  64,  M,   128, 128, M,   256, 256, 256, 256, M,
                                       512, 512, 512, 512, M,   512, 512, 512, 512, M};

Stages make_features(const std::vector<std::int64_t>& cfg, bool batch_norm, std::int64_t in) {
  Stages features;
  for (const auto v : cfg) {
    if (v == M) {
      push(features, nn::MaxPool2d(nn::MaxPool2dOptions(2).stride(2)));
      continue;
    }
    push(features, nn::Conv2d(nn::Conv2dOptions(in, v, 3).padding(1)));
    if (batch_norm) push(features, nn::BatchNorm2d(v));
    push(features, nn::ReLU());
    in = v;
  }
  return features;
}

Stages make_vgg(const std::vector<std::int64_t>& cfg, bool batch_norm, const Config& c) {
  const auto num_classes = c.get<std::int64_t>("num_classes");
  const auto dropout = c.get<double>("dropout");
  Stages net;
  net->append("features", nn::AnyModule(make_features(cfg, batch_norm, in_channels(c))));
  net->append("avgpool", nn::AnyModule(nn::AdaptiveAvgPool2d(7)));
  net->append("flatten", nn::AnyModule(nn::Flatten()));
  net->append("classifier", nn::AnyModule(sequential(nn::Linear(512 * 7 * 7, 4096), nn::ReLU(), nn::Dropout(dropout),
                                                     nn::Linear(4096, 4096), nn::ReLU(), nn::Dropout(dropout),
                                                     nn::Linear(4096, num_classes))));
  init_convs_kaiming_fan_out(*net);
  init_linears_normal(*net);
  return net;
}

template <const std::vector<std::int64_t>& Cfg, bool BatchNorm> Stages make(const Config& c) {
  return make_vgg(Cfg, BatchNorm, c);
}

}  // namespace
}  // namespace graft::backbones

namespace gb = graft::backbones;

#define GRAFT_VGG_KEYS GRAFT_TV_KEYS, graft::KeySpec("dropout", 0.5, "dropout in the classifier").min(0).max(1)

GRAFT_PLUGIN(backbone, "vgg11", (gb::make<gb::kVgg11, false>), "VGG-11, torchvision layout", GRAFT_VGG_KEYS);
GRAFT_PLUGIN(backbone, "vgg13", (gb::make<gb::kVgg13, false>), "VGG-13, torchvision layout", GRAFT_VGG_KEYS);
GRAFT_PLUGIN(backbone, "vgg16", (gb::make<gb::kVgg16, false>), "VGG-16, torchvision layout", GRAFT_VGG_KEYS);
GRAFT_PLUGIN(backbone, "vgg19", (gb::make<gb::kVgg19, false>), "VGG-19, torchvision layout", GRAFT_VGG_KEYS);
GRAFT_PLUGIN(backbone, "vgg11_bn", (gb::make<gb::kVgg11, true>), "VGG-11 with batch norm, torchvision layout",
             GRAFT_VGG_KEYS);
GRAFT_PLUGIN(backbone, "vgg13_bn", (gb::make<gb::kVgg13, true>), "VGG-13 with batch norm, torchvision layout",
             GRAFT_VGG_KEYS);
GRAFT_PLUGIN(backbone, "vgg16_bn", (gb::make<gb::kVgg16, true>), "VGG-16 with batch norm, torchvision layout",
             GRAFT_VGG_KEYS);
GRAFT_PLUGIN(backbone, "vgg19_bn", (gb::make<gb::kVgg19, true>), "VGG-19 with batch norm, torchvision layout",
             GRAFT_VGG_KEYS);
