#include "graft/model.h"

#include <sstream>

namespace graft {

void StagesImpl::check_new_name(const std::string& name) const {
  if (name.empty() || name.find('.') != std::string::npos)
    throw Error::usage("invalid stage name '" + name + "' (it must be non-empty and contain no '.')");
  if (contains(name)) throw Error::usage("a stage called '" + name + "' already exists");
}

bool StagesImpl::contains(const std::string& name) const { return index_of(name) < stages_.size(); }

std::size_t StagesImpl::index_of(const std::string& name) const {
  for (std::size_t i = 0; i < stages_.size(); ++i)
    if (stages_[i].first == name) return i;
  return stages_.size();
}

void StagesImpl::append(const std::string& name, torch::nn::AnyModule module) {
  insert(stages_.size(), name, std::move(module));
}

// torch::nn::Module keeps children in registration order and has no insert, so the
// children from `index` on are unregistered and registered again in the new order.
void StagesImpl::reregister_from(std::size_t index) {
  for (std::size_t i = index; i < stages_.size(); ++i)
    if (named_children().contains(stages_[i].first)) unregister_module(stages_[i].first);
  for (std::size_t i = index; i < stages_.size(); ++i) register_module(stages_[i].first, stages_[i].second.ptr());
}

void StagesImpl::insert(std::size_t index, const std::string& name, torch::nn::AnyModule module) {
  check_new_name(name);
  if (index > stages_.size()) index = stages_.size();
  stages_.insert(stages_.begin() + static_cast<std::ptrdiff_t>(index), {name, std::move(module)});
  reregister_from(index);
}

void StagesImpl::replace(const std::string& name, torch::nn::AnyModule module) {
  const std::size_t i = index_of(name);
  if (i == stages_.size()) throw Error::usage("no stage called '" + name + "'");
  stages_[i].second = std::move(module);
  replace_module(name, stages_[i].second.ptr());
}

void StagesImpl::remove(const std::string& name) {
  const std::size_t i = index_of(name);
  if (i == stages_.size()) throw Error::usage("no stage called '" + name + "'");
  unregister_module(name);
  stages_.erase(stages_.begin() + static_cast<std::ptrdiff_t>(i));
}

torch::Tensor StagesImpl::forward(torch::Tensor x) {
  for (auto& stage : stages_) x = stage.second.forward(x);
  return x;
}

std::shared_ptr<torch::nn::Module> StagesImpl::clone(const torch::optional<torch::Device>& device) const {
  auto copy = std::make_shared<StagesImpl>();
  for (const auto& stage : stages_) copy->append(stage.first, stage.second.clone(device));
  copy->train(is_training());
  return copy;
}

void StagesImpl::pretty_print(std::ostream& stream) const { stream << "Stages"; }

namespace {
std::string strip_namespace(std::string s) {
  const std::string ns = "torch::nn::";
  for (auto pos = s.find(ns); pos != std::string::npos; pos = s.find(ns)) s.erase(pos, ns.size());
  return s;
}

void print_tree(const torch::nn::Module& m, const std::string& root_name, std::ostream& os, int indent) {
  if (!root_name.empty()) {
    os << root_name;
  } else {
    std::ostringstream self;
    m.pretty_print(self);
    os << strip_namespace(self.str());
  }
  const auto children = m.named_children();
  if (children.is_empty()) return;
  os << "(\n";
  for (const auto& child : children) {
    os << std::string(indent + 2, ' ') << "(" << child.key() << "): ";
    print_tree(*child.value(), "", os, indent + 2);
    os << "\n";
  }
  os << std::string(indent, ' ') << ")";
}
}  // namespace

std::string type_name(const torch::nn::Module& module) {
  std::string name = module.name();
  const auto colon = name.rfind("::");
  if (colon != std::string::npos) name = name.substr(colon + 2);
  if (name.size() > 4 && name.compare(name.size() - 4, 4, "Impl") == 0) name.resize(name.size() - 4);
  return name;
}

std::string describe_tree(const torch::nn::Module& model, const std::string& root_name) {
  std::ostringstream os;
  print_tree(model, root_name, os, 0);
  return os.str();
}

ParamCount count_parameters(const torch::nn::Module& model) {
  ParamCount c;
  for (const auto& p : model.parameters()) {
    c.total += p.numel();
    if (p.requires_grad()) c.trainable += p.numel();
  }
  return c;
}

}  // namespace graft
