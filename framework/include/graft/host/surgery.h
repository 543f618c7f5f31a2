// Model surgery: editing the tree of stages by dotted path ("fc", "classifier.6",
// "layer1.0.conv1"), and the pure weight transformations that go with it.
#pragma once

#include <optional>
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

/// Replaces the module at `path`; its parent must be a Stages container or a Block.
void replace_at(torch::nn::Module& root, const std::string& path, torch::nn::AnyModule module);
/// Inserts `module` as `name` into the Stages container at `container` ("" = root), before
/// position `index` (index past the end appends).
void insert_into(torch::nn::Module& root, const std::string& container, std::size_t index, const std::string& name,
                 torch::nn::AnyModule module);
/// Removes the stage at `path`; its parent must be a Stages container.
void remove_at(torch::nn::Module& root, const std::string& path);

/// Shape of the tensor that reaches `path` (its input; its output when `output`) when
/// `example` goes through the model, found by forwarding Stages containers in order.
/// nullopt when `path` sits inside a leaf with its own forward.
std::optional<std::vector<std::int64_t>> shape_at(torch::nn::Module& root, const std::string& path,
                                                  const torch::Tensor& example, bool output);

/// timm's adapt_input_conv: a pretrained first conv's weight [O, 3, kH, kW] for `in_chans`
/// inputs. 1 channel: the sum over RGB; N: RGB repeated and scaled by 3/N.
torch::Tensor adapt_input_conv(std::int64_t in_chans, const torch::Tensor& weight);

/// Paths of the modules, in state-dict order, that hold parameters of their own.
std::vector<std::string> parameter_modules(const torch::nn::Module& root);

}  // namespace graft
