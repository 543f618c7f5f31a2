// Containers made of module plugins, so that a network is a recipe, not C++: `stages` runs
// its modules in order; `branches` runs named paths on the same input and merges them (seed
// 000's MultiPathNet). Each is a module plugin and a backbone plugin; every module inside is
// built by graft::build_module, which sizes it from what flows in at its place.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <graft/model.h>

namespace nn = torch::nn;

namespace {

std::vector<std::int64_t> input_of(const graft::Config& c) {
  auto in = graft::incoming_shape();
  if (in.empty()) c.fail("needs the shape of its input to size its modules: give model.input_shape [C, H, W]");
  return in;
}

void check_name(const graft::Config& at, const std::string& name) {
  if (name.empty() || name.find('.') != std::string::npos) at.fail("a name must be non-empty and contain no '.'");
}

// Modules in order: a list (named 0, 1, ... as nn.Sequential) or a map of name: module.
graft::PlacedModule build_stages(const graft::Config& layers, std::vector<std::int64_t> shape) {
  if (!layers.is_list() && !layers.is_map()) layers.fail("expected a list of module plugins or a map of name: module");
  if (layers.size() == 0) layers.fail("names no module");
  graft::Stages stages;
  const auto names = layers.is_map() ? layers.keys() : std::vector<std::string>{};
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const auto name = layers.is_map() ? names[i] : std::to_string(i);
    const graft::Config spec = layers.is_map() ? layers[name] : layers[i];
    check_name(spec, name);
    auto placed = graft::build_module(spec, shape);
    stages->append(name, placed.module);
    shape = placed.output_shape;
  }
  return {nn::AnyModule(stages), shape};
}

graft::Stages make_stages(const graft::Config& c) {
  auto built = build_stages(c["layers"], input_of(c));
  return std::dynamic_pointer_cast<graft::StagesImpl>(built.module.ptr());
}

std::string shape_text(at::IntArrayRef s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

// The merged paths' shapes must agree: all dimensions (concat: all but the channels).
std::string mismatch(const std::string& merge, const std::vector<std::string>& names,
                     const std::vector<std::vector<std::int64_t>>& shapes) {
  for (std::size_t k = 1; k < shapes.size(); ++k) {
    bool same = shapes[k].size() == shapes[0].size();
    for (std::size_t d = 0; same && d < shapes[0].size(); ++d) same = (merge == "concat" && d == 1) || shapes[k][d] == shapes[0][d];
    if (!same)
      return fmt::format("cannot {} '{}' {} and '{}' {}{}", merge, names[0], shape_text(shapes[0]), names[k],
                         shape_text(shapes[k]), merge == "concat" ? " (all sizes but the channels must agree)" : "");
  }
  return "";
}

using Named = std::vector<std::pair<std::string, nn::AnyModule>>;

// Named paths on the same input, merged (concat on channels, add, mean), then `then:`
// stages in order; its children are the paths, then those stages, as in a Python module
// that holds them (state-dict keys `path_a.0.weight`, `fusion.weight`).
class BranchesImpl : public nn::Cloneable<BranchesImpl>, public graft::Container {
 public:
  BranchesImpl(std::string merge, Named paths, Named then)
      : merge_(std::move(merge)), paths_(std::move(paths)), then_(std::move(then)) {
    reregister();
  }

  torch::Tensor forward(torch::Tensor x) {
    std::vector<torch::Tensor> ys;
    ys.reserve(paths_.size());
    for (auto& [name, path] : paths_) {
      ys.push_back(path.forward(x));
      ran(name, x, ys.back());
    }
    torch::Tensor y = merged(ys);
    for (auto& [name, stage] : then_) {
      torch::Tensor z = stage.forward(y);
      ran(name, y, z);
      y = std::move(z);
    }
    return y;
  }

  void replace_child(const std::string& name, nn::AnyModule module) override {
    find(name)->second = std::move(module);
    replace_module(name, find(name)->second.ptr());
  }
  void insert_child(const std::string& anchor, bool after, const std::string& name, nn::AnyModule module) override {
    check_new(name);
    auto* at = find(anchor);
    Named& list = owner(at);
    list.insert(list.begin() + (at - list.data()) + (after ? 1 : 0), std::make_pair(name, std::move(module)));
    reregister();
  }
  void append_child(const std::string& name, nn::AnyModule module) override {
    check_new(name);
    then_.emplace_back(name, std::move(module));
    register_module(name, then_.back().second.ptr());
  }
  void remove_child(const std::string& name) override {
    auto* at = find(name);
    Named& list = owner(at);
    if (&list == &paths_ && paths_.size() == 1) throw graft::Error::usage("cannot remove '" + name + "': it is the only path");
    list.erase(list.begin() + (at - list.data()));
    unregister_module(name);
  }

  void reset() override {}
  std::shared_ptr<nn::Module> clone(const torch::optional<torch::Device>& device) const override {
    auto copy = [&](const Named& from) {
      Named out;
      for (const auto& [name, m] : from) out.emplace_back(name, m.clone(device));
      return out;
    };
    auto c = std::make_shared<BranchesImpl>(merge_, copy(paths_), copy(then_));
    c->train(is_training());
    return c;
  }
  void pretty_print(std::ostream& stream) const override { stream << "Branches(merge=" << merge_ << ")"; }

 private:
  torch::Tensor merged(const std::vector<torch::Tensor>& ys) const {
    if (ys.size() > 1) {
      std::vector<std::string> names;
      std::vector<std::vector<std::int64_t>> shapes;
      for (std::size_t k = 0; k < ys.size(); ++k) {
        names.push_back(paths_[k].first);
        shapes.push_back(ys[k].sizes().vec());
      }
      if (auto why = mismatch(merge_, names, shapes); !why.empty()) throw graft::Error::runtime("branches: " + why);
    }
    if (merge_ == "concat") return torch::cat(ys, 1);
    torch::Tensor sum = ys[0];
    for (std::size_t k = 1; k < ys.size(); ++k) sum = sum + ys[k];
    return merge_ == "mean" ? sum / static_cast<double>(ys.size()) : sum;
  }

  std::pair<std::string, nn::AnyModule>* find(const std::string& name) {
    for (Named* list : {&paths_, &then_})
      for (auto& child : *list)
        if (child.first == name) return &child;
    throw graft::Error::usage("no path or stage called '" + name + "'");
  }
  Named& owner(const std::pair<std::string, nn::AnyModule>* child) {
    return child >= paths_.data() && child < paths_.data() + paths_.size() ? paths_ : then_;
  }
  void check_new(const std::string& name) {
    if (name.empty() || name.find('.') != std::string::npos)
      throw graft::Error::usage("invalid name '" + name + "' (it must be non-empty and contain no '.')");
    for (const Named* list : {&paths_, &then_})
      for (const auto& child : *list)
        if (child.first == name) throw graft::Error::usage("a path or stage called '" + name + "' already exists");
  }
  // children in state-dict order: the paths, then the stages after the merge
  void reregister() {
    for (const Named* list : {&paths_, &then_})
      for (const auto& child : *list)
        if (named_children().contains(child.first)) unregister_module(child.first);
    for (const Named* list : {&paths_, &then_})
      for (const auto& child : *list) register_module(child.first, child.second.ptr());
  }

  std::string merge_;
  Named paths_, then_;
};
TORCH_MODULE(Branches);

Branches make_branches(const graft::Config& c) {
  const auto input = input_of(c);
  const graft::Config paths = c["paths"];
  if (!paths.is_map()) paths.fail("expected a map of path name: a module plugin, or a list of them");
  Named built_paths;
  std::vector<std::string> names;
  std::vector<std::vector<std::int64_t>> shapes;
  for (const auto& name : paths.keys()) {
    const graft::Config spec = paths[name];
    check_name(spec, name);
    auto placed = spec.is_list() ? build_stages(spec, input) : graft::build_module(spec, input);
    built_paths.emplace_back(name, placed.module);
    names.push_back(name);
    shapes.push_back(placed.output_shape);
  }
  const std::string merge = c.get<std::string>("merge");
  if (auto why = mismatch(merge, names, shapes); !why.empty()) c["merge"].fail(why);
  std::vector<std::int64_t> shape = shapes[0];
  if (merge == "concat")
    for (std::size_t k = 1; k < shapes.size(); ++k) shape[1] += shapes[k][1];
  Named then;
  const graft::Config after = c["then"];
  if (!after.is_null()) {
    if (!after.is_map()) after.fail("expected a map of name: module plugin, run in order after the merge");
    for (const auto& name : after.keys()) {
      const graft::Config spec = after[name];
      check_name(spec, name);
      if (paths.has(name)) spec.fail("a path is already called '" + name + "'");
      auto placed = graft::build_module(spec, shape);
      then.emplace_back(name, placed.module);
      shape = placed.output_shape;
    }
  }
  return Branches(merge, std::move(built_paths), std::move(then));
}

}  // namespace

#define GRAFT_BRANCHES_KEYS                                                                                      \
  graft::KeySpec::required_key("paths", graft::ValueType::section,                                             \
                               "named paths run on the same input: name: a module plugin, or a list of them")  \
      .non_empty(),                                                                                            \
      graft::KeySpec("merge", "concat", "how the paths' outputs are merged: concat (on channels), add, mean")   \
          .choices({"concat", "add", "mean"}),                                                                 \
      graft::KeySpec("then", graft::ValueType::section, "~", "name: module plugin, run in order after the merge")
#define GRAFT_STAGES_KEYS                                                                     \
  graft::KeySpec::required_key("layers", graft::ValueType::section,                           \
                               "module plugins run in order: a list (named 0, 1, ...) or a map of name: module") \
      .non_empty()

GRAFT_PLUGIN(module, "branches", make_branches,
             "Named paths on the same input, merged (concat, add, mean), then stages: seed 000's MultiPathNet",
             GRAFT_BRANCHES_KEYS);
GRAFT_PLUGIN(backbone, "branches", make_branches,
             "A network of named paths on the same input, merged, then stages (module plugins; needs model.input_shape)",
             GRAFT_BRANCHES_KEYS);
GRAFT_PLUGIN(module, "stages", make_stages, "Module plugins run in order (nn.Sequential)", GRAFT_STAGES_KEYS);
GRAFT_PLUGIN(backbone, "stages", make_stages,
             "A network of module plugins run in order (nn.Sequential; needs model.input_shape)", GRAFT_STAGES_KEYS);
