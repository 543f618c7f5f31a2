// torchvision's Inception v3 (models/inception.py, 0.14): BasicConv2d, InceptionA..E and,
// with aux_logits, the auxiliary head AuxLogits. As in torchvision, the head sits between
// Mixed_6e and Mixed_7a; on the main path it passes its input through, and in training mode
// it also computes its logits and keeps them (AuxLogitsImpl::logits()).
#include "common.h"

namespace graft::backbones {
namespace {

torch::Tensor avg_pool_3x3(const torch::Tensor& x) { return torch::avg_pool2d(x, {3, 3}, {1, 1}, {1, 1}); }
torch::Tensor max_pool_3x3_s2(const torch::Tensor& x) { return torch::max_pool2d(x, {3, 3}, {2, 2}); }

class InceptionAImpl : public Block<InceptionAImpl> {
 public:
  void pretty_print(std::ostream& os) const override { os << "InceptionA"; }
  InceptionAImpl(std::int64_t in, std::int64_t pool_features) {
    add("branch1x1", basic_conv(in, 64, 1));
    add("branch5x5_1", basic_conv(in, 48, 1));
    add("branch5x5_2", basic_conv(48, 64, 5, 1, 2));
    add("branch3x3dbl_1", basic_conv(in, 64, 1));
    add("branch3x3dbl_2", basic_conv(64, 96, 3, 1, 1));
    add("branch3x3dbl_3", basic_conv(96, 96, 3, 1, 1));
    add("branch_pool", basic_conv(in, pool_features, 1));
  }
  torch::Tensor forward(torch::Tensor x) {
    return torch::cat({call("branch1x1", x), call("branch5x5_2", call("branch5x5_1", x)),
                       call("branch3x3dbl_3", call("branch3x3dbl_2", call("branch3x3dbl_1", x))),
                       call("branch_pool", avg_pool_3x3(x))},
                      1);
  }
};
TORCH_MODULE(InceptionA);

class InceptionBImpl : public Block<InceptionBImpl> {
 public:
  void pretty_print(std::ostream& os) const override { os << "InceptionB"; }
  explicit InceptionBImpl(std::int64_t in) {
    add("branch3x3", basic_conv(in, 384, 3, 2));
    add("branch3x3dbl_1", basic_conv(in, 64, 1));
    add("branch3x3dbl_2", basic_conv(64, 96, 3, 1, 1));
    add("branch3x3dbl_3", basic_conv(96, 96, 3, 2));
  }
  torch::Tensor forward(torch::Tensor x) {
    return torch::cat({call("branch3x3", x),
                       call("branch3x3dbl_3", call("branch3x3dbl_2", call("branch3x3dbl_1", x))),
                       max_pool_3x3_s2(x)},
                      1);
  }
};
TORCH_MODULE(InceptionB);

class InceptionCImpl : public Block<InceptionCImpl> {
 public:
  void pretty_print(std::ostream& os) const override { os << "InceptionC"; }
  InceptionCImpl(std::int64_t in, std::int64_t c7) {
    add("branch1x1", basic_conv(in, 192, 1));
    add("branch7x7_1", basic_conv(in, c7, 1));
    add("branch7x7_2", basic_conv(c7, c7, {1, 7}, 1, {0, 3}));
    add("branch7x7_3", basic_conv(c7, 192, {7, 1}, 1, {3, 0}));
    add("branch7x7dbl_1", basic_conv(in, c7, 1));
    add("branch7x7dbl_2", basic_conv(c7, c7, {7, 1}, 1, {3, 0}));
    add("branch7x7dbl_3", basic_conv(c7, c7, {1, 7}, 1, {0, 3}));
    add("branch7x7dbl_4", basic_conv(c7, c7, {7, 1}, 1, {3, 0}));
    add("branch7x7dbl_5", basic_conv(c7, 192, {1, 7}, 1, {0, 3}));
    add("branch_pool", basic_conv(in, 192, 1));
  }
  torch::Tensor forward(torch::Tensor x) {
    auto b7 = call("branch7x7_3", call("branch7x7_2", call("branch7x7_1", x)));
    auto d7 = call("branch7x7dbl_1", x);
    for (const char* name : {"branch7x7dbl_2", "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5"})
      d7 = call(name, d7);
    return torch::cat({call("branch1x1", x), b7, d7, call("branch_pool", avg_pool_3x3(x))}, 1);
  }
};
TORCH_MODULE(InceptionC);

class InceptionDImpl : public Block<InceptionDImpl> {
 public:
  void pretty_print(std::ostream& os) const override { os << "InceptionD"; }
  explicit InceptionDImpl(std::int64_t in) {
    add("branch3x3_1", basic_conv(in, 192, 1));
    add("branch3x3_2", basic_conv(192, 320, 3, 2));
    add("branch7x7x3_1", basic_conv(in, 192, 1));
    add("branch7x7x3_2", basic_conv(192, 192, {1, 7}, 1, {0, 3}));
    add("branch7x7x3_3", basic_conv(192, 192, {7, 1}, 1, {3, 0}));
    add("branch7x7x3_4", basic_conv(192, 192, 3, 2));
  }
  torch::Tensor forward(torch::Tensor x) {
    auto b7 = call("branch7x7x3_1", x);
    for (const char* name : {"branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"}) b7 = call(name, b7);
    return torch::cat({call("branch3x3_2", call("branch3x3_1", x)), b7, max_pool_3x3_s2(x)}, 1);
  }
};
TORCH_MODULE(InceptionD);

class InceptionEImpl : public Block<InceptionEImpl> {
 public:
  void pretty_print(std::ostream& os) const override { os << "InceptionE"; }
  explicit InceptionEImpl(std::int64_t in) {
    add("branch1x1", basic_conv(in, 320, 1));
    add("branch3x3_1", basic_conv(in, 384, 1));
    add("branch3x3_2a", basic_conv(384, 384, {1, 3}, 1, {0, 1}));
    add("branch3x3_2b", basic_conv(384, 384, {3, 1}, 1, {1, 0}));
    add("branch3x3dbl_1", basic_conv(in, 448, 1));
    add("branch3x3dbl_2", basic_conv(448, 384, 3, 1, 1));
    add("branch3x3dbl_3a", basic_conv(384, 384, {1, 3}, 1, {0, 1}));
    add("branch3x3dbl_3b", basic_conv(384, 384, {3, 1}, 1, {1, 0}));
    add("branch_pool", basic_conv(in, 192, 1));
  }
  torch::Tensor forward(torch::Tensor x) {
    auto b3 = call("branch3x3_1", x);
    b3 = torch::cat({call("branch3x3_2a", b3), call("branch3x3_2b", b3)}, 1);
    auto d3 = call("branch3x3dbl_2", call("branch3x3dbl_1", x));
    d3 = torch::cat({call("branch3x3dbl_3a", d3), call("branch3x3dbl_3b", d3)}, 1);
    return torch::cat({call("branch1x1", x), b3, d3, call("branch_pool", avg_pool_3x3(x))}, 1);
  }
};
TORCH_MODULE(InceptionE);

class AuxLogitsImpl : public Block<AuxLogitsImpl> {
 public:
  void pretty_print(std::ostream& os) const override { os << "InceptionAux"; }
  AuxLogitsImpl(std::int64_t in, std::int64_t num_classes) {
    add("conv0", basic_conv(in, 128, 1));
    add("conv1", basic_conv(128, 768, 5));
    add("fc", nn::Linear(768, num_classes));
  }
  /// The input, unchanged; in training mode the head's logits are kept in logits().
  torch::Tensor forward(torch::Tensor x) {
    logits_ = this->is_training() ? head(x) : torch::Tensor();
    return x;
  }
  const torch::Tensor& logits() const { return logits_; }
  torch::Tensor head(torch::Tensor x) {
    x = call("conv1", call("conv0", torch::avg_pool2d(x, {5, 5}, {3, 3})));
    return call("fc", torch::flatten(torch::adaptive_avg_pool2d(x, {1, 1}), 1));
  }

 private:
  torch::Tensor logits_;
};
TORCH_MODULE(AuxLogits);

Stages make_inception_v3(const Config& c) {
  const auto num_classes = c.get<std::int64_t>("num_classes");
  const auto in = in_channels(c);
  auto max_pool = [] { return nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2)); };
  Stages net;
  auto stage = [&net](const std::string& name, auto module) { net->append(name, nn::AnyModule(module)); };
  if (c.get<bool>("transform_input")) {
    if (in != 3) c["transform_input"].fail("needs 3 input channels, got in_channels " + std::to_string(in));
    stage("transform_input", TransformInput());
  }
  stage("Conv2d_1a_3x3", basic_conv(in, 32, 3, 2));
  stage("Conv2d_2a_3x3", basic_conv(32, 32, 3));
  stage("Conv2d_2b_3x3", basic_conv(32, 64, 3, 1, 1));
  stage("maxpool1", max_pool());
  stage("Conv2d_3b_1x1", basic_conv(64, 80, 1));
  stage("Conv2d_4a_3x3", basic_conv(80, 192, 3));
  stage("maxpool2", max_pool());
  stage("Mixed_5b", InceptionA(192, 32));
  stage("Mixed_5c", InceptionA(256, 64));
  stage("Mixed_5d", InceptionA(288, 64));
  stage("Mixed_6a", InceptionB(288));
  stage("Mixed_6b", InceptionC(768, 128));
  stage("Mixed_6c", InceptionC(768, 160));
  stage("Mixed_6d", InceptionC(768, 160));
  stage("Mixed_6e", InceptionC(768, 192));
  if (c.get<bool>("aux_logits")) stage("AuxLogits", AuxLogits(768, num_classes));
  stage("Mixed_7a", InceptionD(768));
  stage("Mixed_7b", InceptionE(1280));
  stage("Mixed_7c", InceptionE(2048));
  stage("avgpool", nn::AdaptiveAvgPool2d(1));
  stage("dropout", nn::Dropout(c.get<double>("dropout")));
  stage("flatten", nn::Flatten());
  stage("fc", nn::Linear(2048, num_classes));
  // torchvision's `stddev` attributes: only AuxLogits.fc's reaches a weight (the one set on
  // AuxLogits.conv1 sits on the BasicConv2d, not on its conv).
  init_trunc_normal(*net, [](const std::string& path) { return path == "AuxLogits.fc" ? 0.001 : 0.1; });
  return net;
}

}  // namespace
}  // namespace graft::backbones

GRAFT_PLUGIN(backbone, "inception_v3", graft::backbones::make_inception_v3, "Inception v3, torchvision layout",
             GRAFT_TV_KEYS, graft::KeySpec("dropout", 0.5, "dropout before the classifier").min(0).max(1),
             graft::KeySpec("aux_logits", false, "build the auxiliary head (AuxLogits)"),
             graft::KeySpec("transform_input", false, "re-normalise ImageNet-normalised inputs as the original weights expect"));
