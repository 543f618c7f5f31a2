#include "graft/features.h"

#include <torch/torch.h>

#include "graft/error.h"
#include "graft/host/surgery.h"
#include "graft/host/watch.h"
#include "graft/model.h"

namespace graft {

namespace {

// A path is tapped where a Container runs it: its parent must be one.
void check_tappable(const torch::nn::Module& root, const std::string& path) {
  if (path.empty()) throw Error::usage("an empty layer path names the whole model (its output is the forward's)");
  module_at(root, path);  // a missing path: the did-you-mean line surgery gives
  const auto dot = path.rfind('.');
  const torch::nn::Module& parent = dot == std::string::npos ? root : *module_at(root, path.substr(0, dot));
  if (!dynamic_cast<const Container*>(&parent))
    throw Error::usage("cannot tap '" + path + "': its parent is a " + type_name(parent) +
                       ", whose forward is fixed code (tap the parent instead)");
}

}  // namespace

std::map<std::string, torch::Tensor> extract_features(torch::nn::AnyModule& model, const torch::Tensor& input,
                                                      const std::vector<std::string>& paths) {
  auto& root = *model.ptr();
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : paths) {
    check_tappable(root, p);
    out[p] = torch::Tensor();
  }
  {
    torch::NoGradGuard no_grad;
    ForwardWatch watch(root, [&](const std::string& path, const torch::Tensor&, const torch::Tensor& output) {
      if (const auto it = out.find(path); it != out.end()) it->second = output.detach();
    });
    model.forward(input);
  }
  for (const auto& [path, tensor] : out)
    if (!tensor.defined()) throw Error::runtime("'" + path + "' did not run in the forward (the model does not use it)");
  return out;
}

}  // namespace graft
