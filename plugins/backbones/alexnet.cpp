// torchvision's AlexNet (models/alexnet.py, 0.14): features, avgpool, classifier.
#include "common.h"

namespace graft::backbones {
namespace {

Stages make_alexnet(const Config& c) {
  const auto num_classes = c.get<std::int64_t>("num_classes");
  const auto dropout = c.get<double>("dropout");
  auto pool = [] { return nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2)); };
  Stages net;
  net->append("features", nn::AnyModule(sequential(
                              nn::Conv2d(nn::Conv2dOptions(in_channels(c), 64, 11).stride(4).padding(2)), nn::ReLU(),
                              pool(), nn::Conv2d(nn::Conv2dOptions(64, 192, 5).padding(2)), nn::ReLU(), pool(),
                              nn::Conv2d(nn::Conv2dOptions(192, 384, 3).padding(1)), nn::ReLU(),
                              nn::Conv2d(nn::Conv2dOptions(384, 256, 3).padding(1)), nn::ReLU(),
                              nn::Conv2d(nn::Conv2dOptions(256, 256, 3).padding(1)), nn::ReLU(), pool())));
  net->append("avgpool", nn::AnyModule(nn::AdaptiveAvgPool2d(6)));
  net->append("flatten", nn::AnyModule(nn::Flatten()));
  net->append("classifier",
              nn::AnyModule(sequential(nn::Dropout(dropout), nn::Linear(256 * 6 * 6, 4096), nn::ReLU(),
                                       nn::Dropout(dropout), nn::Linear(4096, 4096), nn::ReLU(),
                                       nn::Linear(4096, num_classes))));
  // torchvision keeps PyTorch's default initialisation here, as LibTorch's is.
  return net;
}

}  // namespace
}  // namespace graft::backbones

GRAFT_PLUGIN(backbone, "alexnet", graft::backbones::make_alexnet, "AlexNet, torchvision layout", GRAFT_TV_KEYS,
             graft::KeySpec("dropout", 0.5, "dropout in the classifier").min(0).max(1));
