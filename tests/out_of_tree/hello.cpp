#include <torch/torch.h>

#include <graft/model.h>

namespace {
torch::nn::AnyModule make_hello_head(const graft::Config& c) {
  return torch::nn::AnyModule(torch::nn::Linear(c.get<int>("in_features"), c.get<int>("num_classes")));
}
}  // namespace

GRAFT_PLUGIN(module, "hello_head", make_hello_head, "A linear head from an out-of-tree plugin",
             graft::KeySpec("in_features", 512, "input features"),
             graft::KeySpec("num_classes", 10, "output classes"));
