// What `graft inspect --summary` and `--dot` show: a torchsummary-like table of the model
// (one watched dry forward) and a Graphviz graph of its stages.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <torch/nn/modules/container/any.h>

namespace graft {

struct SummaryRow {
  std::string path;
  std::string type;
  int depth = 0;
  std::vector<std::int64_t> output_shape;  ///< empty inside a leaf that is not a Container
  std::int64_t params = 0;                 ///< in the whole subtree
  std::int64_t trainable = 0;
  std::string origin;  ///< loaded / adapted / initialised / new, "mixed", or "" without parameters
};

/// One row per module, in tree order (a Container root's children at depth 0), with what
/// every child of a Container (Stages, Block, branches) returned in a forward of one sample
/// of `input_shape` (C, H, W) in eval mode.
std::vector<SummaryRow> summarize(torch::nn::AnyModule& model, const std::vector<std::int64_t>& input_shape,
                                  const std::map<std::string, std::string>& origin);

/// A Graphviz digraph of the stages in forward order; containers are clusters.
std::string to_dot(torch::nn::AnyModule& model, const std::string& name);

}  // namespace graft
