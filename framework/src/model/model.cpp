#include "graft/model.h"
#include "graft/host/watch.h"

#include <exception>

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

void StagesImpl::insert_child(const std::string& anchor, bool after, const std::string& name, torch::nn::AnyModule module) {
  const std::size_t i = index_of(anchor);
  if (i == stages_.size()) throw Error::usage("no stage called '" + anchor + "'");
  insert(after ? i + 1 : i, name, std::move(module));
}

namespace {
// Tells the thread's FailureProbe, if there is one, that the call of a container's child
// ends in an exception (destroyed while that exception unwinds the call).
class ChildCall {
 public:
  ChildCall(const Container& container, const std::string& name, const torch::Tensor& input)
      : probe_(FailureProbe::current()) {
    if (!probe_) return;
    container_ = &container;
    name_ = &name;
    input_ = &input;
    exceptions_ = std::uncaught_exceptions();
  }
  ~ChildCall() {
    if (probe_ && std::uncaught_exceptions() > exceptions_) probe_->threw(*container_, *name_, *input_);
  }
  ChildCall(const ChildCall&) = delete;
  ChildCall& operator=(const ChildCall&) = delete;

 private:
  FailureProbe* probe_;
  const Container* container_ = nullptr;
  const std::string* name_ = nullptr;
  const torch::Tensor* input_ = nullptr;
  int exceptions_ = 0;
};
}  // namespace

torch::Tensor StagesImpl::forward(torch::Tensor x) {
  for (auto& [name, stage] : stages_) {
    const ChildCall call(*this, name, x);
    torch::Tensor y = stage.forward(x);
    ran(name, x, y);
    x = std::move(y);
  }
  return x;
}

// A Block's slots: its own children in add() order, each followed or preceded by what
// surgery inserted next to it (same owner), in the order they run.
BlockBase::Slot* BlockBase::find(const std::string& name) {
  for (auto& s : slots_)
    if (s.name == name) return &s;
  return nullptr;
}

const BlockBase::Slot* BlockBase::find(const std::string& name) const {
  for (const auto& s : slots_)
    if (s.name == name) return &s;
  return nullptr;
}

bool BlockBase::has_child(const std::string& name) const {
  const Slot* s = find(name);
  return s && !s->removed;
}

void BlockBase::add_child(const std::string& name, torch::nn::AnyModule module) {
  if (find(name)) throw Error::runtime("graft::Block: two children called '" + name + "'");
  slots_.push_back({name, std::move(module), name, false});
  self().register_module(name, slots_.back().module.ptr());
}

void BlockBase::reregister() {
  auto& me = self();
  for (const auto& s : slots_)
    if (me.named_children().contains(s.name)) me.unregister_module(s.name);
  for (const auto& s : slots_)
    if (!s.removed) me.register_module(s.name, s.module.ptr());
}

void BlockBase::replace_child(const std::string& name, torch::nn::AnyModule module) {
  Slot* s = find(name);
  if (!s) throw Error::usage("no child called '" + name + "'");
  s->module = std::move(module);
  if (s->removed) {
    s->removed = false;
    reregister();
  } else {
    self().replace_module(name, s->module.ptr());
  }
}

void BlockBase::insert_child(const std::string& anchor, bool after, const std::string& name, torch::nn::AnyModule module) {
  if (name.empty() || name.find('.') != std::string::npos)
    throw Error::usage("invalid child name '" + name + "' (it must be non-empty and contain no '.')");
  if (find(name)) throw Error::usage("a child called '" + name + "' already exists");
  const Slot* at = find(anchor);
  if (!at) throw Error::usage("no child called '" + anchor + "'");
  const auto i = static_cast<std::ptrdiff_t>(at - slots_.data()) + (after ? 1 : 0);
  Slot slot{name, std::move(module), at->owner, false};
  slots_.insert(slots_.begin() + i, std::move(slot));
  edited_ = true;
  reregister();
}

void BlockBase::append_child(const std::string& name, torch::nn::AnyModule) {
  throw Error::usage("cannot append '" + name + "' to a " + type_name(self()) +
                     ": its forward runs its children in its own code (insert next to one of them instead)");
}

void BlockBase::remove_child(const std::string& name) {
  Slot* s = find(name);
  if (!s || s->removed) throw Error::usage("no child called '" + name + "'");
  edited_ = true;
  if (s->owner == s->name) {
    s->removed = true;  // its forward still calls it: from now on it passes its input through
    s->module = torch::nn::AnyModule();
  } else {
    self().unregister_module(name);
    slots_.erase(slots_.begin() + (s - slots_.data()));
  }
  reregister();
}

torch::Tensor BlockBase::call_child(const std::string& name, torch::Tensor x) {
  Slot* s = find(name);
  TORCH_CHECK(s && s->owner == name, "graft::Block ", type_name(self()), " has no child '", name, "'");
  if (!edited_) {
    const ChildCall call(*this, name, x);
    torch::Tensor y = s->module.forward(x);
    ran(name, x, y);
    return y;
  }
  for (auto& slot : slots_) {
    if (slot.owner != name) continue;
    if (slot.removed) continue;  // a removed own child passes x through
    const ChildCall call(*this, slot.name, x);
    torch::Tensor y = slot.module.forward(x);
    ran(slot.name, x, y);
    x = std::move(y);
  }
  return x;
}

torch::nn::AnyModule& BlockBase::child_for_call(const std::string& name) {
  Slot* s = find(name);
  TORCH_CHECK(s && s->owner == name, "graft::Block ", type_name(self()), " has no child '", name, "'");
  if (edited_) {
    for (const auto& slot : slots_)
      if (slot.owner == name && (slot.removed || slot.name != name))
        throw Error::usage("the " + type_name(self()) + "'s child '" + name +
                           "' is called with several arguments: surgery cannot remove it or insert next to it");
  }
  return s->module;
}

void BlockBase::clone_children(const torch::optional<torch::Device>& device) {
  for (auto& s : slots_) {
    if (s.removed) continue;
    s.module = s.module.clone(device);
    self().replace_module(s.name, s.module.ptr());
  }
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
