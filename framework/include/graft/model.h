// The model is a tree of named stages (DESIGN.md). A Stages container forwards its
// children in order; leaves (a conv, a residual block) have their own forward. Surgery is
// editing this tree by dotted path; state-dict keys are the dotted paths of parameters, so
// they stay exactly torchvision's.
#pragma once

#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/pimpl.h>

#include "graft/plugin.h"

namespace graft {

/// An ordered container of named stages, forwarded in order. Like torch::nn::Sequential,
/// but the names are free (torchvision's "conv1", "layer1", or "0", "1", ...) and stages
/// can be inserted, replaced and removed by name.
class StagesImpl : public torch::nn::Cloneable<StagesImpl> {
 public:
  StagesImpl() = default;

  /// Appends `module` under `name` (which must be new and contain no '.').
  void append(const std::string& name, torch::nn::AnyModule module);
  /// Inserts `module` under `name` before position `index` (index == size() appends).
  void insert(std::size_t index, const std::string& name, torch::nn::AnyModule module);
  /// Replaces the stage called `name`, keeping its position.
  void replace(const std::string& name, torch::nn::AnyModule module);
  /// Removes the stage called `name`.
  void remove(const std::string& name);

  std::size_t size() const { return stages_.size(); }
  bool contains(const std::string& name) const;
  /// Position of `name`, or size() when absent.
  std::size_t index_of(const std::string& name) const;
  const std::vector<std::pair<std::string, torch::nn::AnyModule>>& stages() const {
    return stages_;
  }

  torch::Tensor forward(torch::Tensor x);

  void reset() override {}
  /// Deep copy: every stage is cloned (DataParallel replicates through this).
  std::shared_ptr<torch::nn::Module> clone(
      const torch::optional<torch::Device>& device = torch::nullopt) const override;
  void pretty_print(std::ostream& stream) const override;

 private:
  void check_new_name(const std::string& name) const;
  void reregister_from(std::size_t index);

  std::vector<std::pair<std::string, torch::nn::AnyModule>> stages_;
};
TORCH_MODULE(Stages);

template <> struct ProductOf<Kind::backbone> { using type = torch::nn::AnyModule; };
template <> struct ProductOf<Kind::module> { using type = torch::nn::AnyModule; };

/// The model as Python's print(model) shows it: one line per module, children indented.
std::string describe_tree(const torch::nn::Module& model, const std::string& root_name = "");

/// Parameters: total and those with requires_grad.
struct ParamCount {
  std::int64_t total = 0;
  std::int64_t trainable = 0;
};
ParamCount count_parameters(const torch::nn::Module& model);

}  // namespace graft
