#include "graft/features.h"

#include <torch/torch.h>

#include <optional>

#include "graft/error.h"
#include "graft/host/surgery.h"
#include "graft/model.h"

namespace graft {

namespace {

// A pass-through stage that keeps what its module returns.
class TapImpl : public torch::nn::Cloneable<TapImpl> {
 public:
  TapImpl(torch::nn::AnyModule inner, torch::Tensor* slot) : inner_(std::move(inner)), slot_(slot) {}
  void reset() override {}
  torch::Tensor forward(torch::Tensor x) {
    auto y = inner_.forward(std::move(x));
    *slot_ = y.detach();
    return y;
  }

 private:
  torch::nn::AnyModule inner_;
  torch::Tensor* slot_;
};
TORCH_MODULE(Tap);

// A Block's child as an AnyModule again (a Block keeps its AnyModules private): the same
// module object, through its concrete type.
template <class Impl, class Holder>
bool as_any(const std::shared_ptr<torch::nn::Module>& m, std::optional<torch::nn::AnyModule>& out) {
  if (auto typed = std::dynamic_pointer_cast<Impl>(m)) out.emplace(Holder(typed));
  return out.has_value();
}

std::optional<torch::nn::AnyModule> any_of(const std::shared_ptr<torch::nn::Module>& m) {
  namespace nn = torch::nn;
  std::optional<nn::AnyModule> out;
  as_any<StagesImpl, Stages>(m, out) || as_any<nn::Conv1dImpl, nn::Conv1d>(m, out) ||
      as_any<nn::Conv2dImpl, nn::Conv2d>(m, out) || as_any<nn::Conv3dImpl, nn::Conv3d>(m, out) ||
      as_any<nn::BatchNorm1dImpl, nn::BatchNorm1d>(m, out) || as_any<nn::BatchNorm2dImpl, nn::BatchNorm2d>(m, out) ||
      as_any<nn::ReLUImpl, nn::ReLU>(m, out) || as_any<nn::ReLU6Impl, nn::ReLU6>(m, out) ||
      as_any<nn::LeakyReLUImpl, nn::LeakyReLU>(m, out) || as_any<nn::GELUImpl, nn::GELU>(m, out) ||
      as_any<nn::SiLUImpl, nn::SiLU>(m, out) || as_any<nn::SigmoidImpl, nn::Sigmoid>(m, out) ||
      as_any<nn::TanhImpl, nn::Tanh>(m, out) || as_any<nn::LinearImpl, nn::Linear>(m, out) ||
      as_any<nn::MaxPool2dImpl, nn::MaxPool2d>(m, out) || as_any<nn::AvgPool2dImpl, nn::AvgPool2d>(m, out) ||
      as_any<nn::AdaptiveAvgPool2dImpl, nn::AdaptiveAvgPool2d>(m, out) ||
      as_any<nn::AdaptiveMaxPool2dImpl, nn::AdaptiveMaxPool2d>(m, out) || as_any<nn::DropoutImpl, nn::Dropout>(m, out) ||
      as_any<nn::Dropout2dImpl, nn::Dropout2d>(m, out) || as_any<nn::FlattenImpl, nn::Flatten>(m, out) ||
      as_any<nn::IdentityImpl, nn::Identity>(m, out) || as_any<nn::LayerNormImpl, nn::LayerNorm>(m, out) ||
      as_any<nn::LocalResponseNormImpl, nn::LocalResponseNorm>(m, out);
  return out;
}

// One tapped path: where it sits and what to put back.
struct Site {
  std::string path;
  StagesImpl* stages = nullptr;
  BlockBase* block = nullptr;
  std::string name;
  torch::nn::AnyModule original;
};

Site locate(torch::nn::Module& root, const std::string& path) {
  if (path.empty()) throw Error::usage("an empty layer path names the whole model (its output is the forward's)");
  module_at(root, path);  // a missing path: the did-you-mean line surgery gives
  Site s;
  s.path = path;
  const auto dot = path.rfind('.');
  s.name = dot == std::string::npos ? path : path.substr(dot + 1);
  torch::nn::Module& parent = dot == std::string::npos ? root : *module_at(root, path.substr(0, dot));
  if ((s.stages = dynamic_cast<StagesImpl*>(&parent))) {
    s.original = s.stages->stages()[s.stages->index_of(s.name)].second;
    return s;
  }
  if ((s.block = dynamic_cast<BlockBase*>(&parent))) {
    auto any = any_of(module_at(root, path));
    if (!any)
      throw Error::usage("cannot tap '" + path + "': a " + type_name(*module_at(root, path)) + " inside the " +
                         type_name(parent) + " '" + path.substr(0, dot) + "' (tap that block instead)");
    s.original = std::move(*any);
    return s;
  }
  throw Error::usage("cannot tap '" + path + "': its parent is a " + type_name(parent) +
                     ", whose forward is fixed code (tap the parent instead)");
}

void put(Site& s, torch::nn::AnyModule m) {
  if (s.stages) s.stages->replace(s.name, std::move(m));
  else s.block->replace_child(s.name, std::move(m));
}

}  // namespace

std::map<std::string, torch::Tensor> extract_features(torch::nn::AnyModule& model, const torch::Tensor& input,
                                                      const std::vector<std::string>& paths) {
  auto& root = *model.ptr();
  // every site is found before any is tapped: a tap changes the tree its path walks
  std::vector<Site> sites;
  for (const auto& p : paths) {
    bool seen = false;
    for (const auto& s : sites) seen = seen || s.path == p;
    if (!seen) sites.push_back(locate(root, p));
  }
  std::vector<torch::Tensor> outputs(sites.size());
  struct Restore {
    std::vector<Site>& sites;
    std::size_t tapped = 0;
    ~Restore() {
      while (tapped > 0) {
        --tapped;
        put(sites[tapped], sites[tapped].original);
      }
    }
  } restore{sites};
  for (std::size_t k = 0; k < sites.size(); ++k) {
    put(sites[k], torch::nn::AnyModule(Tap(sites[k].original, &outputs[k])));
    restore.tapped = k + 1;
  }
  {
    torch::NoGradGuard no_grad;
    model.forward(input);
  }
  std::map<std::string, torch::Tensor> out;
  for (std::size_t k = 0; k < sites.size(); ++k) {
    if (!outputs[k].defined())
      throw Error::runtime("'" + sites[k].path + "' did not run in the forward (the model does not use it)");
    out[sites[k].path] = outputs[k];
  }
  return out;
}

}  // namespace graft
