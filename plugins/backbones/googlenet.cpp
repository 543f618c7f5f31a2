// torchvision's GoogLeNet (models/googlenet.py, 0.14): BasicConv2d, Inception blocks and,
// with aux_logits, the two auxiliary heads.
//
// The heads sit in the stage list where torchvision's forward taps them (aux1 after
// inception4a, aux2 after inception4d): on the main path they pass their input through; in
// training mode they also compute their logits and keep them (AuxHeadImpl::logits()). Only
// then does the order of the state dict differ from torchvision's (which registers them
// after inception5b); the keys and shapes are the same.
#include "common.h"

namespace graft::backbones {
namespace {

class InceptionImpl : public Block<InceptionImpl> {
 public:
  void pretty_print(std::ostream& os) const override { os << "Inception"; }
  InceptionImpl(std::int64_t in, std::int64_t ch1x1, std::int64_t ch3x3red, std::int64_t ch3x3,
                std::int64_t ch5x5red, std::int64_t ch5x5, std::int64_t pool_proj) {
    add("branch1", basic_conv(in, ch1x1, 1));
    add("branch2", sequential(basic_conv(in, ch3x3red, 1), basic_conv(ch3x3red, ch3x3, 3, 1, 1)));
    // torchvision uses a 3x3 convolution here too (a known deviation from the paper's 5x5).
    add("branch3", sequential(basic_conv(in, ch5x5red, 1), basic_conv(ch5x5red, ch5x5, 3, 1, 1)));
    add("branch4", sequential(nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(1).padding(1).ceil_mode(true)),
                              basic_conv(in, pool_proj, 1)));
  }
  torch::Tensor forward(torch::Tensor x) {
    return torch::cat({call("branch1", x), call("branch2", x), call("branch3", x), call("branch4", x)}, 1);
  }
};
TORCH_MODULE(Inception);

class AuxHeadImpl : public Block<AuxHeadImpl> {
 public:
  void pretty_print(std::ostream& os) const override { os << "InceptionAux"; }
  AuxHeadImpl(std::int64_t in, std::int64_t num_classes, double dropout) {
    add("conv", basic_conv(in, 128, 1));
    add("fc1", nn::Linear(2048, 1024));
    add("fc2", nn::Linear(1024, num_classes));
    add("dropout", nn::Dropout(dropout));
  }
  /// The input, unchanged; in training mode the head's logits are kept in logits().
  torch::Tensor forward(torch::Tensor x) {
    logits_ = this->is_training() ? head(x) : torch::Tensor();
    return x;
  }
  /// The logits of the last training-mode forward (undefined after an eval-mode one).
  const torch::Tensor& logits() const { return logits_; }
  torch::Tensor head(torch::Tensor x) {
    x = torch::flatten(call("conv", torch::adaptive_avg_pool2d(x, {4, 4})), 1);
    return call("fc2", call("dropout", torch::relu(call("fc1", x))));
  }

 private:
  torch::Tensor logits_;
};
TORCH_MODULE(AuxHead);

Stages make_googlenet(const Config& c) {
  const auto num_classes = c.get<std::int64_t>("num_classes");
  const auto in = in_channels(c);
  const bool aux = c.get<bool>("aux_logits");
  const double dropout_aux = c.get<double>("dropout_aux");
  auto max_pool = [](std::int64_t k) { return nn::MaxPool2d(nn::MaxPool2dOptions(k).stride(2).ceil_mode(true)); };
  Stages net;
  auto stage = [&net](const std::string& name, auto module) { net->append(name, nn::AnyModule(module)); };
  if (c.get<bool>("transform_input")) {
    if (in != 3) c["transform_input"].fail("needs 3 input channels, got in_channels " + std::to_string(in));
    stage("transform_input", TransformInput());
  }
  stage("conv1", basic_conv(in, 64, 7, 2, 3));
  stage("maxpool1", max_pool(3));
  stage("conv2", basic_conv(64, 64, 1));
  stage("conv3", basic_conv(64, 192, 3, 1, 1));
  stage("maxpool2", max_pool(3));
  stage("inception3a", Inception(192, 64, 96, 128, 16, 32, 32));
  stage("inception3b", Inception(256, 128, 128, 192, 32, 96, 64));
  stage("maxpool3", max_pool(3));
  stage("inception4a", Inception(480, 192, 96, 208, 16, 48, 64));
  if (aux) stage("aux1", AuxHead(512, num_classes, dropout_aux));
  stage("inception4b", Inception(512, 160, 112, 224, 24, 64, 64));
  stage("inception4c", Inception(512, 128, 128, 256, 24, 64, 64));
  stage("inception4d", Inception(512, 112, 144, 288, 32, 64, 64));
  if (aux) stage("aux2", AuxHead(528, num_classes, dropout_aux));
  stage("inception4e", Inception(528, 256, 160, 320, 32, 128, 128));
  stage("maxpool4", max_pool(2));
  stage("inception5a", Inception(832, 256, 160, 320, 32, 128, 128));
  stage("inception5b", Inception(832, 384, 192, 384, 48, 128, 128));
  stage("avgpool", nn::AdaptiveAvgPool2d(1));
  stage("flatten", nn::Flatten());
  stage("dropout", nn::Dropout(c.get<double>("dropout")));
  stage("fc", nn::Linear(1024, num_classes));
  init_trunc_normal(*net, [](const std::string&) { return 0.01; });
  return net;
}

}  // namespace
}  // namespace graft::backbones

GRAFT_PLUGIN(backbone, "googlenet", graft::backbones::make_googlenet, "GoogLeNet (Inception v1), torchvision layout",
             GRAFT_TV_KEYS, graft::KeySpec("dropout", 0.2, "dropout before the classifier").min(0).max(1),
             graft::KeySpec("aux_logits", false, "build the two auxiliary heads (aux1, aux2)"),
             graft::KeySpec("dropout_aux", 0.7, "dropout in the auxiliary heads").min(0).max(1),
             graft::KeySpec("transform_input", false, "re-normalise ImageNet-normalised inputs as the original weights expect"));
