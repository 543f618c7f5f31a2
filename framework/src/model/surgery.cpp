#include "graft/host/surgery.h"

#include <torch/torch.h>

#include <cmath>

#include "config/dotted_path.h"

namespace graft {

namespace {

// Module paths: "" is the model itself, with no segments.
std::vector<std::string> split(const std::string& path) {
  return path.empty() ? std::vector<std::string>{} : detail::split_dotted(path);
}

std::pair<std::string, std::string> parent_and_name(const std::string& path) {
  const auto dot = path.rfind('.');
  if (dot == std::string::npos) return {"", path};
  return {path.substr(0, dot), path.substr(dot + 1)};
}

}  // namespace

std::shared_ptr<torch::nn::Module> module_at(const torch::nn::Module& root, const std::string& path) {
  // The root itself has no shared_ptr here; callers pass containers they own.
  std::shared_ptr<torch::nn::Module> current;
  const torch::nn::Module* node = &root;
  std::string walked;
  for (const auto& part : split(path)) {
    const auto children = node->named_children();
    const auto* child = children.find(part);
    if (!child) {
      std::vector<std::string> names = children.keys();
      const std::string guess = closest_match(part, names);
      std::string msg = "no module '" + (walked.empty() ? part : walked + "." + part) + "' in the model";
      if (!guess.empty()) msg += " (did you mean '" + (walked.empty() ? guess : walked + "." + guess) + "'?)";
      msg += names.empty() ? "; '" + walked + "' has no children" : "; children of " + (walked.empty() ? std::string("the model") : "'" + walked + "'") + ": ";
      for (std::size_t k = 0; k < names.size() && k < 12; ++k) msg += (k ? ", " : "") + names[k];
      if (names.size() > 12) msg += ", ...";
      throw Error::usage(msg);
    }
    current = *child;
    node = current.get();
    walked = walked.empty() ? part : walked + "." + part;
  }
  if (!current) throw Error::usage("an empty path names the whole model");
  return current;
}

const torch::nn::Module& module_ref(const torch::nn::Module& root, const std::string& path) {
  return path.empty() ? root : *module_at(root, path);
}

namespace {
// The container holding `path`, and the child's name in it.
std::pair<Container*, std::string> parent_of(torch::nn::Module& root, const std::string& path, const std::string& doing,
                                             const std::string& why) {
  module_at(root, path);  // reports a missing path with suggestions
  const auto [parent_path, name] = parent_and_name(path);
  torch::nn::Module& parent = parent_path.empty() ? root : *module_at(root, parent_path);
  auto* container = dynamic_cast<Container*>(&parent);
  if (!container)
    throw Error::usage("cannot " + doing + " '" + path + "': its parent is a " + type_name(parent) +
                       ", whose forward is fixed code (" + why + ")");
  return {container, name};
}
}  // namespace

void replace_at(torch::nn::Module& root, const std::string& path, torch::nn::AnyModule module) {
  auto [parent, name] = parent_of(root, path, "replace", "only children of Stages, Blocks and branches can be replaced");
  parent->replace_child(name, std::move(module));
}

void insert_next_to(torch::nn::Module& root, const std::string& anchor, bool after, const std::string& name,
                    torch::nn::AnyModule module) {
  auto [parent, anchor_name] =
      parent_of(root, anchor, "insert next to", "insert next to it only in Stages, Blocks and branches");
  parent->insert_child(anchor_name, after, name, std::move(module));
}

void append_to(torch::nn::Module& root, const std::string& container, const std::string& name,
               torch::nn::AnyModule module) {
  torch::nn::Module& target = container.empty() ? root : *module_at(root, container);
  auto* c = dynamic_cast<Container*>(&target);
  if (!c)
    throw Error::usage("cannot append to '" + (container.empty() ? std::string("the model") : container) + "': it is a " +
                       type_name(target) + ", not a container (Stages, branches)");
  c->append_child(name, std::move(module));
}

void remove_at(torch::nn::Module& root, const std::string& path) {
  auto [parent, name] = parent_of(root, path, "remove", "replace its parent instead");
  parent->remove_child(name);
}

torch::Tensor adapt_input_conv(std::int64_t in_chans, const torch::Tensor& weight) {
  if (weight.dim() != 4) throw Error::usage("in_channels: the first layer is not a 2-D convolution");
  const auto type = weight.scalar_type();
  auto w = weight.detach().to(torch::kFloat);
  const auto O = w.size(0), I = w.size(1), J = w.size(2), K = w.size(3);
  if (in_chans == 1) {
    if (I > 3) {
      if (I % 3) throw Error::usage("in_channels: cannot adapt a first conv with " + std::to_string(I) + " inputs");
      w = w.reshape({O, I / 3, 3, J, K}).sum(2);
    } else {
      w = w.sum(1, /*keepdim=*/true);
    }
  } else if (in_chans != 3) {
    if (I != 3) throw Error::usage("in_channels: cannot adapt a first conv with " + std::to_string(I) + " inputs");
    const auto repeat = static_cast<std::int64_t>(std::ceil(static_cast<double>(in_chans) / 3.0));
    w = w.repeat({1, repeat, 1, 1}).slice(1, 0, in_chans) * (3.0 / static_cast<double>(in_chans));
  }
  return w.to(type).contiguous();
}

namespace {
void collect(const torch::nn::Module& m, const std::string& prefix, std::vector<std::string>& out) {
  if (!m.named_parameters(false).is_empty()) out.push_back(prefix);
  for (const auto& c : m.named_children()) collect(*c.value(), prefix.empty() ? c.key() : prefix + "." + c.key(), out);
}
}  // namespace

std::vector<std::string> parameter_modules(const torch::nn::Module& root) {
  std::vector<std::string> out;
  collect(root, "", out);
  return out;
}

}  // namespace graft
