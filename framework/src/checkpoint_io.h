// The pieces of a checkpoint that are not the trainer's loop: optimizer state in Python's
// layout (and back, by parameter name), RNG states, the recipe diff, and finding the
// newest good checkpoint of a run dir. Internal to graft_core.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Dict.h>
#include <ATen/core/ivalue.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

namespace graft::ckpt {

/// Bumped when the checkpoint layout changes in a way older graft cannot resume.
constexpr std::int64_t format_version = 1;

using Dict = c10::impl::GenericDict;
Dict new_dict();

/// The optimizer's state as Python's `optimizer.state_dict()`: {'state': {index: {...}},
/// 'param_groups': [{lr, momentum, ..., 'params': [index...], 'param_names': [name...]}]}
/// so `torch.optim.SGD(params).load_state_dict(...)` accepts it. Tensors are copied to
/// the CPU. `names[g][i]` is the name of the i-th parameter of group g.
Dict optimizer_state(const torch::optim::Optimizer& optimizer, const std::vector<std::vector<std::string>>& names);
/// Restores the state saved by optimizer_state() by parameter name (not by position):
/// every saved name must be a parameter of the live optimizer. Tensors go to each
/// parameter's device. Group options come from the recipe, not the file.
void load_optimizer_state(torch::optim::Optimizer& optimizer, const std::vector<std::vector<std::string>>& names,
                          const Dict& saved, const std::string& file);
/// The names of the optimizer's parameters, group by group, from the model's names.
std::vector<std::vector<std::string>> group_param_names(const torch::optim::Optimizer& optimizer,
                                                        const torch::nn::Module& model);

/// The default generators' states: {'cpu': ByteTensor, 'cuda': [ByteTensor per device]}.
Dict rng_state();
void set_rng_state(const Dict& state);

/// The differences between two resolved recipes, one "key.path: old -> new" line each.
std::vector<std::string> recipe_diff(const std::string& saved_yaml, const std::string& current_yaml);
/// Whether a difference line changes the model (refused on resume).
bool changes_model(const std::string& diff_line);

struct Loaded {
  std::string path;
  Dict dict = new_dict();
  bool exact = true;
};
/// A graft checkpoint, read and checked (every record's CRC-32, the layout). Throws
/// graft::Error naming the file.
Loaded load(const std::string& path);
/// The checkpoints of a run dir's checkpoints/, newest first (modification time).
std::vector<std::string> candidates(const std::string& checkpoints_dir);
/// The newest checkpoint of `checkpoints_dir` that loads and is exact; the ones passed
/// over (corrupt, truncated, not exact) are logged with the reason. nullopt: none.
std::optional<Loaded> newest_good(const std::string& checkpoints_dir);

}  // namespace graft::ckpt
