#include <torch/torch.h>

#include <graft/log.h>
#include <graft/model.h>

namespace {
torch::nn::AnyModule make_hello_head(const graft::Config& c) {
  const int in = c.get<int>("in_features"), out = c.get<int>("num_classes");
  graft::log::debug("hello_head: {} -> {}", in, out);  // graft/log.h: fmt comes with find_package(graft)
  return torch::nn::AnyModule(torch::nn::Linear(in, out));
}
}  // namespace

GRAFT_PLUGIN(module, "hello_head", make_hello_head, "A linear head from an out-of-tree plugin",
             graft::KeySpec("in_features", 512, "input features"),
             graft::KeySpec("num_classes", 10, "output classes"));
