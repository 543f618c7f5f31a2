// Multi-layer feature extraction without hooks: the model is a tree of containers that say
// what each child returned (graft::Container), so the output of any dotted path ("layer3",
// "features.3", "layer4.1.conv2") is seen in one forward.
//
//   auto f = graft::extract_features(model, images, {"layer2", "layer4.1.conv2"});
//   f.at("layer2")   // [N, 128, 28, 28] for a ResNet-18 at 224 x 224
#pragma once

#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/modules/container/any.h>

namespace graft {

/// The outputs of the modules at `paths` for one forward of `input` through `model`
/// (under NoGradGuard, in the model's current train/eval mode: call model.eval() first
/// for inference features). A module that runs more than once gives its last output.
/// The model is not changed.
///
/// A path that does not exist is a usage error naming it, with the closest existing path
/// ("did you mean ..."). A path is tapped where its parent is a Container: a Stages, a
/// graft::Block or a `branches` module.
std::map<std::string, torch::Tensor> extract_features(torch::nn::AnyModule& model, const torch::Tensor& input,
                                                      const std::vector<std::string>& paths);

}  // namespace graft
