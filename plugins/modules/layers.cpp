// Module plugins for surgery: heads, attention blocks and plain layers. Keys named
// in_features / in_channels / channels / num_features may be left out: graft fills them
// with the size of what flows in at the place the module goes.
#include <torch/torch.h>

#include <graft/model.h>

namespace nn = torch::nn;

namespace {

// A size graft infers (0, the default) where surgery places the module; made anywhere
// else, the module needs it given.
std::int64_t inferred(const graft::Config& c, const std::string& key) {
  const auto v = c.get<std::int64_t>(key);
  if (v == 0)
    c[key].fail("must be given here (0 means: inferred from what flows in where graft places the module: surgery, branches, stages)");
  return v;
}

nn::AnyModule make_linear(const graft::Config& c) {
  return nn::AnyModule(nn::Linear(
      nn::LinearOptions(inferred(c, "in_features"), c.get<std::int64_t>("out_features")).bias(c.get<bool>("bias"))));
}

// Seed 000's classification head: Linear, ReLU, Dropout, Linear (one block per hidden width).
graft::Stages make_mlp_head(const graft::Config& c) {
  graft::Stages head;
  std::int64_t width = inferred(c, "in_features");
  const double p = c.get<double>("dropout");
  std::size_t index = 0;
  for (const auto h : c.get<std::vector<std::int64_t>>("hidden")) {
    head->append(std::to_string(index++), nn::AnyModule(nn::Linear(width, h)));
    head->append(std::to_string(index++), nn::AnyModule(nn::ReLU()));
    head->append(std::to_string(index++), nn::AnyModule(nn::Dropout(p)));
    width = h;
  }
  head->append(std::to_string(index), nn::AnyModule(nn::Linear(width, c.get<std::int64_t>("out_features"))));
  return head;
}

// Seed 000's ChannelAttention (squeeze-and-excitation): x * sigmoid(fc(avg_pool(x))).
struct ChannelAttentionImpl : graft::Block<ChannelAttentionImpl> {
  ChannelAttentionImpl(std::int64_t channels, std::int64_t reduction) {
    graft::Stages fc;
    fc->append("0", nn::AnyModule(nn::Linear(channels, channels / reduction)));
    fc->append("1", nn::AnyModule(nn::ReLU()));
    fc->append("2", nn::AnyModule(nn::Linear(channels / reduction, channels)));
    fc->append("3", nn::AnyModule(nn::Sigmoid()));
    add("avg_pool", nn::AdaptiveAvgPool2d(1));
    add("fc", fc);
  }
  torch::Tensor forward(torch::Tensor x) {
    // flatten and unsqueeze, not view({x.size(0), c}): a TorchScript trace would fix the batch size
    auto y = call("avg_pool", x).flatten(1);
    y = call("fc", y).unsqueeze(-1).unsqueeze(-1);
    return x * y;
  }
};
TORCH_MODULE(ChannelAttention);

nn::AnyModule make_channel_attention(const graft::Config& c) {
  const auto channels = inferred(c, "channels");
  const auto reduction = c.get<std::int64_t>("reduction");
  if (channels / reduction < 1) c["reduction"].fail("leaves no hidden units for " + std::to_string(channels) + " channels");
  return nn::AnyModule(ChannelAttention(channels, reduction));
}

nn::AnyModule make_conv2d(const graft::Config& c) {
  return nn::AnyModule(nn::Conv2d(nn::Conv2dOptions(inferred(c, "in_channels"), c.get<std::int64_t>("out_channels"),
                                                    c.get<std::int64_t>("kernel_size"))
                                      .stride(c.get<std::int64_t>("stride"))
                                      .padding(c.get<std::int64_t>("padding"))
                                      .bias(c.get<bool>("bias"))));
}

nn::AnyModule make_batchnorm2d(const graft::Config& c) { return nn::AnyModule(nn::BatchNorm2d(inferred(c, "num_features"))); }
nn::AnyModule make_batchnorm1d(const graft::Config& c) { return nn::AnyModule(nn::BatchNorm1d(inferred(c, "num_features"))); }
nn::AnyModule make_relu(const graft::Config&) { return nn::AnyModule(nn::ReLU()); }
nn::AnyModule make_sigmoid(const graft::Config&) { return nn::AnyModule(nn::Sigmoid()); }
nn::AnyModule make_identity(const graft::Config&) { return nn::AnyModule(nn::Identity()); }
nn::AnyModule make_flatten(const graft::Config&) { return nn::AnyModule(nn::Flatten()); }
nn::AnyModule make_dropout(const graft::Config& c) { return nn::AnyModule(nn::Dropout(c.get<double>("p"))); }
// torch.nn.MaxPool2d / AvgPool2d: the stride defaults to the kernel size.
template <class Pool, class Options> nn::AnyModule make_pool(const graft::Config& c) {
  const auto k = c.get<std::int64_t>("kernel_size");
  const auto stride = c.get<std::int64_t>("stride");
  return nn::AnyModule(Pool(Options(k).stride(stride == 0 ? k : stride).padding(c.get<std::int64_t>("padding"))));
}
nn::AnyModule make_avg_pool(const graft::Config& c) {
  return nn::AnyModule(nn::AdaptiveAvgPool2d(c.get<std::int64_t>("output_size")));
}

}  // namespace

GRAFT_PLUGIN(module, "linear", make_linear, "nn.Linear (a new head: `model.fc = nn.Linear(in, classes)`)",
             graft::KeySpec("in_features", 0, "inputs (0: inferred from the model)").min(0),
             graft::KeySpec::required_key("out_features", graft::ValueType::integer, "outputs").min(1),
             graft::KeySpec("bias", true, "learn an additive bias"));
GRAFT_PLUGIN(module, "mlp_head", make_mlp_head, "Linear, ReLU, Dropout, ..., Linear: seed 000's multi-layer head",
             graft::KeySpec("in_features", 0, "inputs (0: inferred from the model)").min(0),
             graft::KeySpec("hidden", std::vector<std::int64_t>{512}, "hidden widths").min(1),
             graft::KeySpec("dropout", 0.5, "dropout after each hidden layer").min(0).less_than(1),
             graft::KeySpec::required_key("out_features", graft::ValueType::integer, "outputs (classes)").min(1));
GRAFT_PLUGIN(module, "channel_attention", make_channel_attention,
             "Squeeze-and-excitation channel attention (seed 000's ChannelAttention)",
             graft::KeySpec("channels", 0, "channels of the feature map (0: inferred)").min(0),
             graft::KeySpec("reduction", 16, "hidden units = channels / reduction").min(1));
GRAFT_PLUGIN(module, "conv2d", make_conv2d, "nn.Conv2d",
             graft::KeySpec("in_channels", 0, "input channels (0: inferred)").min(0),
             graft::KeySpec::required_key("out_channels", graft::ValueType::integer, "output channels").min(1),
             graft::KeySpec("kernel_size", 3, "kernel size").min(1), graft::KeySpec("stride", 1, "stride").min(1),
             graft::KeySpec("padding", 0, "zero padding").min(0), graft::KeySpec("bias", true, "learn a bias"));
GRAFT_PLUGIN(module, "batchnorm2d", make_batchnorm2d, "nn.BatchNorm2d",
             graft::KeySpec("num_features", 0, "channels (0: inferred)").min(0));
GRAFT_PLUGIN(module, "batchnorm1d", make_batchnorm1d, "nn.BatchNorm1d",
             graft::KeySpec("num_features", 0, "features (0: inferred)").min(0));
GRAFT_PLUGIN(module, "relu", make_relu, "nn.ReLU");
GRAFT_PLUGIN(module, "sigmoid", make_sigmoid, "nn.Sigmoid");
GRAFT_PLUGIN(module, "identity", make_identity, "nn.Identity (a placeholder for a removed layer)");
GRAFT_PLUGIN(module, "flatten", make_flatten, "nn.Flatten");
GRAFT_PLUGIN(module, "dropout", make_dropout, "nn.Dropout", graft::KeySpec("p", 0.5, "drop probability").min(0).less_than(1));
#define GRAFT_POOL_KEYS                                                                   \
  graft::KeySpec::required_key("kernel_size", graft::ValueType::integer, "window size").min(1), \
      graft::KeySpec("stride", 0, "stride (0: the kernel size)").min(0),                    \
      graft::KeySpec("padding", 0, "zero padding").min(0)
GRAFT_PLUGIN(module, "max_pool2d", (make_pool<nn::MaxPool2d, nn::MaxPool2dOptions>), "nn.MaxPool2d", GRAFT_POOL_KEYS);
GRAFT_PLUGIN(module, "avg_pool2d", (make_pool<nn::AvgPool2d, nn::AvgPool2dOptions>), "nn.AvgPool2d", GRAFT_POOL_KEYS);
GRAFT_PLUGIN(module, "adaptive_avg_pool2d", make_avg_pool, "nn.AdaptiveAvgPool2d",
             graft::KeySpec("output_size", 1, "output height and width").min(1));
