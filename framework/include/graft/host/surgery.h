// Model surgery: editing the tree of containers by dotted path ("fc", "classifier.6",
// "layer1.0.conv1"), and the pure weight transformations that go with it.
#pragma once

#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>

#include "graft/model.h"

namespace graft {

/// The module at `path` ("" is the root). Throws a usage error naming the first segment
/// that does not exist, with the children that do (and the closest one).
std::shared_ptr<torch::nn::Module> module_at(const torch::nn::Module& root, const std::string& path);

/// Like module_at, but "" gives the root itself.
const torch::nn::Module& module_ref(const torch::nn::Module& root, const std::string& path);

/// Replaces the module at `path`; its parent must be a Container (Stages, Block, branches).
void replace_at(torch::nn::Module& root, const std::string& path, torch::nn::AnyModule module);
/// Adds `module` as `name` next to the module at `anchor` (before it, or after), in the
/// Container that holds it (Container::insert_child says what "next to" means there).
void insert_next_to(torch::nn::Module& root, const std::string& anchor, bool after, const std::string& name,
                    torch::nn::AnyModule module);
/// Adds `module` as `name`, run last, to the Container at `container` ("" = the root).
void append_to(torch::nn::Module& root, const std::string& container, const std::string& name,
               torch::nn::AnyModule module);
/// Removes the module at `path`; its parent must be a Container (in a Block, the child
/// then passes its input through).
void remove_at(torch::nn::Module& root, const std::string& path);

/// timm's adapt_input_conv: a pretrained first conv's weight [O, 3, kH, kW] for `in_chans`
/// inputs. 1 channel: the sum over RGB; N: RGB repeated and scaled by 3/N.
torch::Tensor adapt_input_conv(std::int64_t in_chans, const torch::Tensor& weight);

/// Paths of the modules, in state-dict order, that hold parameters of their own.
std::vector<std::string> parameter_modules(const torch::nn::Module& root);

}  // namespace graft
