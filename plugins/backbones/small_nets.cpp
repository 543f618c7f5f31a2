// Small networks trained from scratch in quick recipes: lenet (the seeds'
// LeNetSequential), simple_cnn (two conv+BN blocks, Fashion-MNIST's benchmark shape) and mlp.
// Their state-dict keys are those of the same nets written with nn.Sequential in Python.
#include <torch/torch.h>

#include <graft/model.h>

namespace nn = torch::nn;

namespace {

// Spatial size after a conv (no padding, stride 1) and a 2x2 max-pool.
std::int64_t conv_pool(std::int64_t size, std::int64_t kernel, std::int64_t padding) {
  return (size + 2 * padding - kernel + 1) / 2;
}

graft::Stages make_lenet(const graft::Config& c) {
  const auto in = c.get<std::int64_t>("in_channels");
  const auto size = c.get<std::int64_t>("input_size");
  const auto after = conv_pool(conv_pool(size, 5, 0), 5, 0);
  if (after <= 0) c["input_size"].fail("is too small for LeNet's two 5x5 convolutions");

  graft::Stages features;
  features->append("0", nn::AnyModule(nn::Conv2d(nn::Conv2dOptions(in, 6, 5))));
  features->append("1", nn::AnyModule(nn::ReLU()));
  features->append("2", nn::AnyModule(nn::MaxPool2d(nn::MaxPool2dOptions(2).stride(2))));
  features->append("3", nn::AnyModule(nn::Conv2d(nn::Conv2dOptions(6, 16, 5))));
  features->append("4", nn::AnyModule(nn::ReLU()));
  features->append("5", nn::AnyModule(nn::MaxPool2d(nn::MaxPool2dOptions(2).stride(2))));

  graft::Stages classifier;
  classifier->append("0", nn::AnyModule(nn::Linear(16 * after * after, 120)));
  classifier->append("1", nn::AnyModule(nn::ReLU()));
  classifier->append("2", nn::AnyModule(nn::Linear(120, 84)));
  classifier->append("3", nn::AnyModule(nn::ReLU()));
  classifier->append("4", nn::AnyModule(nn::Linear(84, c.get<std::int64_t>("num_classes"))));

  graft::Stages net;
  net->append("features", nn::AnyModule(features));
  net->append("flatten", nn::AnyModule(nn::Flatten()));
  net->append("classifier", nn::AnyModule(classifier));
  return net;
}

graft::Stages make_simple_cnn(const graft::Config& c) {
  const auto in = c.get<std::int64_t>("in_channels");
  const auto width = c.get<std::int64_t>("width");
  const auto size = c.get<std::int64_t>("input_size");
  const auto after = conv_pool(conv_pool(size, 3, 1), 3, 1);
  if (after <= 0) c["input_size"].fail("is too small for two conv+pool blocks");

  graft::Stages features;
  features->append("0", nn::AnyModule(nn::Conv2d(nn::Conv2dOptions(in, width, 3).padding(1))));
  features->append("1", nn::AnyModule(nn::BatchNorm2d(width)));
  features->append("2", nn::AnyModule(nn::ReLU()));
  features->append("3", nn::AnyModule(nn::MaxPool2d(nn::MaxPool2dOptions(2))));
  features->append("4", nn::AnyModule(nn::Conv2d(nn::Conv2dOptions(width, 2 * width, 3).padding(1))));
  features->append("5", nn::AnyModule(nn::BatchNorm2d(2 * width)));
  features->append("6", nn::AnyModule(nn::ReLU()));
  features->append("7", nn::AnyModule(nn::MaxPool2d(nn::MaxPool2dOptions(2))));

  const auto hidden = c.get<std::int64_t>("hidden");
  graft::Stages classifier;
  classifier->append("0", nn::AnyModule(nn::Linear(2 * width * after * after, hidden)));
  classifier->append("1", nn::AnyModule(nn::ReLU()));
  classifier->append("2", nn::AnyModule(nn::Dropout(c.get<double>("dropout"))));
  classifier->append("3", nn::AnyModule(nn::Linear(hidden, c.get<std::int64_t>("num_classes"))));

  graft::Stages net;
  net->append("features", nn::AnyModule(features));
  net->append("flatten", nn::AnyModule(nn::Flatten()));
  net->append("classifier", nn::AnyModule(classifier));
  return net;
}

graft::Stages make_mlp(const graft::Config& c) {
  graft::Stages net;
  net->append("0", nn::AnyModule(nn::Flatten()));
  std::int64_t width = c.get<std::int64_t>("in_features");
  const double dropout = c.get<double>("dropout");
  std::size_t index = 1;
  for (const auto h : c.get<std::vector<std::int64_t>>("hidden")) {
    net->append(std::to_string(index++), nn::AnyModule(nn::Linear(width, h)));
    net->append(std::to_string(index++), nn::AnyModule(nn::ReLU()));
    if (dropout > 0) net->append(std::to_string(index++), nn::AnyModule(nn::Dropout(dropout)));
    width = h;
  }
  net->append(std::to_string(index), nn::AnyModule(nn::Linear(width, c.get<std::int64_t>("num_classes"))));
  return net;
}

}  // namespace

GRAFT_PLUGIN(backbone, "lenet", make_lenet, "LeNet-5 as the seeds' LeNetSequential (features, classifier)",
             graft::KeySpec("num_classes", 10, "output classes").min(1),
             graft::KeySpec("in_channels", 3, "input channels").min(1),
             graft::KeySpec("input_size", 32, "input height and width").min(1));

GRAFT_PLUGIN(backbone, "simple_cnn", make_simple_cnn, "Two conv+BN+pool blocks and an MLP classifier",
             graft::KeySpec("num_classes", 10, "output classes").min(1),
             graft::KeySpec("in_channels", 1, "input channels").min(1),
             graft::KeySpec("input_size", 28, "input height and width").min(1),
             graft::KeySpec("width", 32, "channels of the first conv (the second has twice as many)").min(1),
             graft::KeySpec("hidden", 256, "width of the classifier's hidden layer").min(1),
             graft::KeySpec("dropout", 0.5, "dropout before the last layer").min(0).max(1));

GRAFT_PLUGIN(backbone, "mlp", make_mlp, "Multi-layer perceptron on flattened inputs",
             graft::KeySpec("num_classes", 10, "output classes").min(1),
             graft::KeySpec("in_features", 784, "inputs after flattening (28*28 for MNIST)").min(1),
             graft::KeySpec("hidden", std::vector<std::int64_t>{256, 128}, "hidden layer widths").min(1),
             graft::KeySpec("dropout", 0.0, "dropout after each hidden layer (0: none)").min(0).max(1));
