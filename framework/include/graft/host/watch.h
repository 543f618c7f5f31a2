// graft's stand-in for forward hooks: every child a Container (Stages, Block, branches)
// runs reports itself through Container::ran(); while a ForwardWatch lives, those reports
// on this thread reach its callback by dotted path. The summary's output shapes, the sizes
// surgery infers and feature taps all come from one watched forward.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/GradMode.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>

#include "graft/model.h"

namespace graft {

class ForwardWatch {
 public:
  /// `input` is undefined for a child called with several arguments.
  using Callback = std::function<void(const std::string& path, const torch::Tensor& input, const torch::Tensor& output)>;

  /// Watches the containers of `root` (as they are now) on this thread until destroyed.
  ForwardWatch(const torch::nn::Module& root, Callback callback);
  ~ForwardWatch();
  ForwardWatch(const ForwardWatch&) = delete;
  ForwardWatch& operator=(const ForwardWatch&) = delete;

  /// Container::ran() of a container of `root`: the callback, with the child's path.
  void report(const Container& container, const std::string& name, const torch::Tensor& input,
              const torch::Tensor& output) const;

 private:
  std::unordered_map<const Container*, std::string> paths_;
  Callback callback_;
  ForwardWatch* outer_;
};

/// While alive: which child of a container of `root` a forward's exception came from on
/// this thread (Stages and Block children say so as the exception leaves them), and what
/// went into it: a failing forward is named by module path and shapes.
class FailureProbe {
 public:
  explicit FailureProbe(const torch::nn::Module& root);
  ~FailureProbe();
  FailureProbe(const FailureProbe&) = delete;
  FailureProbe& operator=(const FailureProbe&) = delete;

  /// The probe of this thread, or null (what containers check first: one branch).
  static FailureProbe* current();
  /// From a container: the call of its child `name` on `input` ends in an exception. The
  /// first report of a failure is the innermost child; the containers around it follow.
  void threw(const Container& container, const std::string& name, const torch::Tensor& input);
  /// "classifier.1 (torch::nn::Linear(in_features=100, out_features=10, bias=true)) got
  /// [64, 3072]", or "" when no child of a container threw.
  const std::string& where() const { return where_; }

 private:
  std::unordered_map<const Container*, std::string> paths_;
  std::string where_;
  FailureProbe* outer_;
};

/// While alive: `module` in eval mode and no gradients; its own mode comes back after (dry
/// forwards: summaries, shape probes).
class EvalScope {
 public:
  explicit EvalScope(torch::nn::Module& module) : module_(module), training_(module.is_training()) { module.eval(); }
  ~EvalScope() { module_.train(training_); }
  EvalScope(const EvalScope&) = delete;
  EvalScope& operator=(const EvalScope&) = delete;

 private:
  torch::nn::Module& module_;
  bool training_;
  c10::NoGradGuard no_grad_;
};

/// The input (or, with `output`, the output) shape of the module at `path` when `example`
/// goes through `model` in eval mode without gradients; the forward ends as soon as that
/// module has run. nullopt when it does not run as a child of a Container (inside a leaf
/// with fixed code, or unused). "" is the root itself.
std::optional<std::vector<std::int64_t>> shape_at(torch::nn::AnyModule& model, const std::string& path,
                                                  const torch::Tensor& example, bool output);

}  // namespace graft
