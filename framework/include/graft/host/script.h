// A model that leaves graft: a TorchScript trace of it (the file Python's torch.jit.load
// and C++'s torch::jit::load read, with graft's state-dict keys) plus graft.json in the
// same archive (input shape, evaluation transforms, class names, recipe, versions), and
// the frozen, inference-optimized module graft's own eval and predict run.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace torch::jit {
struct Module;
}
namespace torch::nn {
class AnyModule;
}

namespace graft {

/// What travels with an exported model, as graft.json in the archive.
struct DeployInfo {
  std::vector<std::int64_t> input_shape;  ///< one sample (C, H, W)
  /// How images are decoded: keep (gray 1 channel, colour 3), rgb or gray.
  std::string color_mode = "keep";
  /// The evaluation transforms as graft's recipe writes them (a JSON list of names or
  /// maps with name:), run by predict on a decoded uint8 image.
  std::string transforms_json = "[]";
  std::vector<std::string> classes;  ///< position = class index
  std::string backbone;              ///< the backbone plugin
  std::string recipe_yaml;           ///< the resolved recipe the model was built from
  std::string source;                ///< the checkpoint (or weights file) exported

  /// graft.json's text: the fields above, a torchvision-style "preprocessing" summary
  /// (resize, crop, interpolation, mean, std) read off the transforms, and the versions.
  std::string to_json() const;
  /// Reads graft.json; a missing or malformed field is a usage error naming `source`.
  static DeployInfo from_json(const std::string& text, const std::string& source);
};

/// A TorchScript module: traced from a graft model, or loaded from an exported file.
class ScriptModel {
 public:
  /// Traces `model` in eval mode (on the CPU) into a TorchScript module that holds the
  /// model's own tensors under their state-dict names. The trace is then checked against
  /// the model at another batch size and on other values; a model it does not reproduce
  /// (a size or a branch taken from the data) is refused, naming the deepest stage at
  /// fault. `sample_shape` is one sample's shape (C, H, W).
  static ScriptModel trace(torch::nn::AnyModule& model, const std::vector<std::int64_t>& sample_shape);
  /// Loads an exported file (any TorchScript module; `info` gets its graft.json, and a
  /// file without one is refused when `info` is asked for). Errors name the file.
  static ScriptModel load(const std::string& path, DeployInfo* info = nullptr);

  /// Writes the module with graft.json inside (atomically: a temporary file, renamed).
  void save(const std::string& path, const DeployInfo& info) const;
  /// Freezes the module (weights become constants) and optimizes it for inference on the
  /// CPU: conv-BatchNorm folding, oneDNN convolutions. An optimized module is for running,
  /// not for saving (LibTorch 1.13 cannot load it back).
  void optimize();
  bool optimized() const { return optimized_; }

  torch::Tensor forward(const torch::Tensor& x);
  torch::jit::Module& module() { return *module_; }
  /// The module's parameters and buffers under their state-dict names (a graft model
  /// rebuilt from graft.json's recipe loads them).
  std::vector<std::pair<std::string, torch::Tensor>> named_tensors() const;

 private:
  std::shared_ptr<torch::jit::Module> module_;
  bool optimized_ = false;
};

}  // namespace graft
