// PyTorch's torch.save file format, both ways, data only. graft reads what torch.save
// writes (the zip format of torch >= 1.6 and the legacy format of older files such as
// torchvision's published weights) and writes zip files that Python's
// torch.load(weights_only=True) opens as plain dicts, lists and tensors.
#pragma once

#include <string>

#include <ATen/core/ivalue.h>
#include <torch/nn/module.h>
#include <torch/ordered_dict.h>

#include "graft/error.h"

namespace graft {

/// Reads a torch.save file as a value tree of None, bool, int, double, string, Tensor,
/// list, tuple and dict (ordered, as Python's). Data only: a pickle naming any global
/// outside tensor rebuilding, storages and OrderedDict is refused, naming that global;
/// nothing in the file is ever executed. Tensors are on the CPU. Every zip record's CRC-32
/// is verified. The file is read with one read() into one buffer and the tensors of a zip
/// file are built on it without a copy: that buffer is freed when the last of them is, so
/// copy (clone) what must outlive the rest.
c10::IValue read_torch_file(const std::string& path);

/// Writes a value tree in torch.save's zip format. Dict keys are strings or ints.
void write_torch_file(const c10::IValue& value, const std::string& path);
/// The bytes write_torch_file() would write, in memory (`what` names the value in errors).
std::string torch_file_bytes(const c10::IValue& value, const std::string& what);

using StateDict = torch::OrderedDict<std::string, torch::Tensor>;

/// The state dict in a file: its top-level dict of tensors, or the dict of tensors found
/// under 'state_dict', 'model_state_dict' or 'model' of a checkpoint dict.
StateDict load_state_dict(const std::string& path);
/// The same, from a value read_torch_file() gave; `path` names it in errors.
StateDict state_dict_in(const c10::IValue& value, const std::string& path);
void save_state_dict(const StateDict& state, const std::string& path);

/// A module's parameters and buffers in Python's state_dict() order (module by module:
/// its own parameters, its own buffers, then its children).
StateDict state_dict(const torch::nn::Module& module);

}  // namespace graft
