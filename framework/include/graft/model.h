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

/// Base of a leaf with its own forward (a residual block, an inception module): its
/// children are named and held as AnyModules, so surgery can still replace one by path
/// ("layer1.0.conv1") and clone() is deep. A Block keeps no parameters of its own, only
/// children (put a learnable tensor in a child module).
///
///   struct BasicBlockImpl : graft::Block<BasicBlockImpl> {
///     BasicBlockImpl(...) { add("conv1", nn::Conv2d(...)); add("bn1", nn::BatchNorm2d(c)); ... }
///     torch::Tensor forward(torch::Tensor x) { auto y = call("conv1", x); ... }
///   };
/// What surgery needs of any Block, whatever its type.
class BlockBase {
 public:
  virtual ~BlockBase() = default;
  virtual bool has_child(const std::string& name) const = 0;
  /// Replaces a child, keeping its name and position.
  virtual void replace_child(const std::string& name, torch::nn::AnyModule module) = 0;
};

template <class Derived> class Block : public torch::nn::Cloneable<Derived>, public BlockBase {
 public:
  void reset() override {}

  bool has_child(const std::string& name) const override { return find(name) != nullptr; }
  void replace_child(const std::string& name, torch::nn::AnyModule module) override {
    auto* slot = find(name);
    if (!slot) throw Error::usage("no child called '" + name + "'");
    *slot = std::move(module);
    this->replace_module(name, slot->ptr());
  }

  std::shared_ptr<torch::nn::Module> clone(
      const torch::optional<torch::Device>& device = torch::nullopt) const override {
    if (!this->named_parameters(/*recurse=*/false).is_empty() || !this->named_buffers(false).is_empty())
      throw Error::runtime("a graft::Block must keep its tensors in child modules to be cloned");
    auto copy = std::make_shared<Derived>(static_cast<const Derived&>(*this));
    for (auto& [name, module] : copy->slots_) {
      module = module.clone(device);
      copy->replace_module(name, module.ptr());
    }
    copy->train(this->is_training());
    return copy;
  }

 protected:
  /// Registers `module` as the child `name` (in registration order, as torchvision does).
  template <class M> void add(const std::string& name, M module) {
    slots_.emplace_back(name, torch::nn::AnyModule(std::move(module)));
    this->register_module(name, slots_.back().second.ptr());
  }
  /// The child `name`'s forward.
  template <class... Args> torch::Tensor call(const std::string& name, Args&&... args) {
    auto* slot = find(name);
    TORCH_CHECK(slot, "graft::Block has no child '", name, "'");
    return slot->forward(std::forward<Args>(args)...);
  }

 private:
  torch::nn::AnyModule* find(const std::string& name) {
    for (auto& c : slots_)
      if (c.first == name) return &c.second;
    return nullptr;
  }
  const torch::nn::AnyModule* find(const std::string& name) const {
    for (const auto& c : slots_)
      if (c.first == name) return &c.second;
    return nullptr;
  }

  std::vector<std::pair<std::string, torch::nn::AnyModule>> slots_;
};

template <> struct ProductOf<Kind::backbone> { using type = torch::nn::AnyModule; };
template <> struct ProductOf<Kind::module> { using type = torch::nn::AnyModule; };

/// A module's type as torchvision names it: "Conv2d", "BatchNorm2d", "BasicBlock", "Stages".
std::string type_name(const torch::nn::Module& module);

/// The model as Python's print(model) shows it: one line per module, children indented.
std::string describe_tree(const torch::nn::Module& model, const std::string& root_name = "");

/// Parameters: total and those with requires_grad.
struct ParamCount {
  std::int64_t total = 0;
  std::int64_t trainable = 0;
};
ParamCount count_parameters(const torch::nn::Module& model);

}  // namespace graft
