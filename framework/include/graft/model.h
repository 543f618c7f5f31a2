// The model is a tree of named stages (DESIGN.md). A Stages container forwards its
// children in order; a Block (a residual block, an inception module) runs its named
// children in its own forward; both are Containers, which surgery edits by dotted path and
// whose children graft watches. State-dict keys are the dotted paths of parameters, so they
// stay exactly torchvision's.
#pragma once

#include <iosfwd>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/pimpl.h>

#include "graft/plugin.h"

namespace graft {

/// A module whose forward runs named children: graft::Stages, graft::Block and the
/// built-in `branches` and `stages` module plugins. Surgery edits any Container by dotted
/// path, and graft sees what each child returns (`graft inspect --summary`, feature taps,
/// the sizes surgery infers) with no forward hooks. A plugin gets all of it by building its
/// networks from Stages and Blocks; a container of its own implements the four edits and
/// calls ran() after each child.
class Container {
 public:
  virtual ~Container() = default;
  /// Replaces the child `name`, keeping its name and place.
  virtual void replace_child(const std::string& name, torch::nn::AnyModule module) = 0;
  /// Adds `module` as the child `name`, run right before or after the child `anchor`:
  /// in a Stages, a stage next to it; in a Block, on what goes into (before) or comes out of
  /// (after) the anchor's call(); in `branches`, a new branch next to a branch (or a stage
  /// next to one of its `then:` stages).
  virtual void insert_child(const std::string& anchor, bool after, const std::string& name,
                            torch::nn::AnyModule module) = 0;
  /// Adds `module` as the child `name`, run last. A Block refuses: its forward is its own code.
  virtual void append_child(const std::string& name, torch::nn::AnyModule module) = 0;
  /// Removes the child `name`. A Block's own child then passes its input through (Python's
  /// `block.downsample = nn.Identity()`), and Block::has_child() says false.
  virtual void remove_child(const std::string& name) = 0;

 protected:
  /// Says that the child `name` ran on `input` (undefined when it took several arguments)
  /// and returned `output`. Costs one branch unless graft is watching this thread.
  void ran(const std::string& name, const torch::Tensor& input, const torch::Tensor& output) const;
};

/// An ordered container of named stages, forwarded in order. Like torch::nn::Sequential,
/// but the names are free (torchvision's "conv1", "layer1", or "0", "1", ...) and stages
/// can be inserted, replaced and removed by name.
class StagesImpl : public torch::nn::Cloneable<StagesImpl>, public Container {
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

  void replace_child(const std::string& name, torch::nn::AnyModule module) override { replace(name, std::move(module)); }
  void insert_child(const std::string& anchor, bool after, const std::string& name, torch::nn::AnyModule module) override;
  void append_child(const std::string& name, torch::nn::AnyModule module) override { append(name, std::move(module)); }
  void remove_child(const std::string& name) override { remove(name); }

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

/// The part of every graft::Block that does not depend on its type: its children by name,
/// and the edits surgery made to them (a child removed, modules inserted next to one).
class BlockBase : public Container {
 public:
  /// False for a child that surgery removed.
  bool has_child(const std::string& name) const;
  void replace_child(const std::string& name, torch::nn::AnyModule module) override;
  void insert_child(const std::string& anchor, bool after, const std::string& name, torch::nn::AnyModule module) override;
  void append_child(const std::string& name, torch::nn::AnyModule module) override;
  void remove_child(const std::string& name) override;

 protected:
  void add_child(const std::string& name, torch::nn::AnyModule module);
  /// The child `name` on `x`, with what surgery inserted around it (or `x` when removed).
  torch::Tensor call_child(const std::string& name, torch::Tensor x);
  /// The child `name` for a call with several arguments (surgery must have left it alone).
  torch::nn::AnyModule& child_for_call(const std::string& name);
  /// After a copy: every child cloned onto `device` and registered in place of the original.
  void clone_children(const torch::optional<torch::Device>& device);

 private:
  virtual torch::nn::Module& self() = 0;
  struct Slot {
    std::string name;
    torch::nn::AnyModule module;
    std::string owner;     ///< the own child it runs with (its own name for an own child)
    bool removed = false;  ///< an own child surgery removed: it passes its input through
  };
  Slot* find(const std::string& name);
  const Slot* find(const std::string& name) const;
  void reregister();

  std::vector<Slot> slots_;  ///< in registration order; an owner's slots in the order they run
  bool edited_ = false;      ///< surgery inserted or removed something
};

/// Base of a leaf with its own forward (a residual block, an inception module): its
/// children are named and held as AnyModules, so surgery can still replace, remove or insert
/// next to one by path ("layer1.0.conv1"), graft sees what each returns, and clone() is
/// deep. A Block keeps no parameters of its own, only children (put a learnable tensor in a
/// child module).
///
///   struct BasicBlockImpl : graft::Block<BasicBlockImpl> {
///     BasicBlockImpl(...) { add("conv1", nn::Conv2d(...)); add("bn1", nn::BatchNorm2d(c)); ... }
///     torch::Tensor forward(torch::Tensor x) { auto y = call("conv1", x); ... }
///   };
template <class Derived> class Block : public torch::nn::Cloneable<Derived>, public BlockBase {
 public:
  void reset() override {}

  std::shared_ptr<torch::nn::Module> clone(
      const torch::optional<torch::Device>& device = torch::nullopt) const override {
    if (!this->named_parameters(/*recurse=*/false).is_empty() || !this->named_buffers(false).is_empty())
      throw Error::runtime("a graft::Block must keep its tensors in child modules to be cloned");
    auto copy = std::make_shared<Derived>(static_cast<const Derived&>(*this));
    copy->clone_children(device);
    copy->train(this->is_training());
    return copy;
  }

 protected:
  /// Registers `module` as the child `name` (in registration order, as torchvision does).
  template <class M> void add(const std::string& name, M module) { add_child(name, torch::nn::AnyModule(std::move(module))); }
  /// The child `name`'s forward.
  template <class... Args> torch::Tensor call(const std::string& name, Args&&... args) {
    if constexpr (sizeof...(Args) == 1 && (std::is_convertible_v<Args, torch::Tensor> && ...)) {
      return call_child(name, std::forward<Args>(args)...);
    } else {
      torch::Tensor y = child_for_call(name).forward(std::forward<Args>(args)...);
      ran(name, torch::Tensor(), y);
      return y;
    }
  }

 private:
  torch::nn::Module& self() override { return *this; }
};

template <> struct ProductOf<Kind::backbone> { using type = torch::nn::AnyModule; };
template <> struct ProductOf<Kind::module> { using type = torch::nn::AnyModule; };

/// A module plugin built by graft::build_module, and what it returns.
struct PlacedModule {
  torch::nn::AnyModule module;
  std::vector<std::int64_t> output_shape;  ///< for an input of the shape it was built for
};

/// For container plugins made of other module plugins (as the built-in `branches`): builds
/// the module plugin `spec` names (a name, or a map with name: and its keys) for an input of
/// shape `input` (batch first), as surgery builds one: the keys it leaves to graft
/// (in_features, in_channels, channels, num_features) are filled from input[1], and errors
/// name spec's file:line:col. Only inside a backbone or module factory that graft calls.
PlacedModule build_module(const Config& spec, const std::vector<std::int64_t>& input);

/// Inside a backbone or module factory: the shape (batch first) of what will flow into the
/// module being built, where graft knows it (surgery's place, `model.input_shape` for a
/// backbone, a container's place); empty otherwise.
std::vector<std::int64_t> incoming_shape();

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
