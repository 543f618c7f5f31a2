// Loss plugins: cross_entropy and nll, reduction 'mean' with PyTorch's semantics. Both call
// the ATen op that torch.nn.functional calls, so values and gradients are Python's,
// including the less obvious combinations (tests/plugins/metrics_oracle.py spells the
// formula out). With weights w, smoothing e and K classes, torch 1.13 computes
//   loss = sum_i [(1 - e) w_y_i (-log p_i,y_i) + e/K sum_c w_c (-log p_i,c)] / sum_i w_y_i
// over the samples whose target is not ignore_index: the smoothing term is weighted by every
// class's weight but normalised by the targets' weights only. An all-ignored batch is NaN.
// What graft adds is checking the batch first (batch.h).
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include <graft/metrics.h>

#include "batch.h"

namespace F = torch::nn::functional;

namespace {

std::optional<std::vector<double>> class_weights(const graft::Config& c) {
  if (c["weight"].is_null()) return std::nullopt;
  const auto w = c.get<std::vector<double>>("weight");  // each finite and >= 0 (its KeySpec)
  if (std::none_of(w.begin(), w.end(), [](double x) { return x > 0; }))
    c["weight"].fail("at least one class weight must be > 0");
  return w;
}

class ClassLoss : public graft::Loss {
 public:
  ClassLoss(std::string who, std::optional<std::vector<double>> weight, std::int64_t ignore_index)
      : who_(std::move(who)), weight_(std::move(weight)), ignore_index_(ignore_index) {}

 protected:
  // The checked target and the weights as a tensor like the output's (undefined if none).
  std::pair<torch::Tensor, torch::Tensor> prepare(const torch::Tensor& output, const torch::Tensor& target) const {
    auto t = graft::metrics::checked_target(who_, output, target, ignore_index_);
    if (!weight_) return {t, {}};
    const auto k = static_cast<std::size_t>(output.size(1));
    if (weight_->size() != k)
      throw graft::Error::usage(who_ + ": " + std::to_string(weight_->size()) + " class weights for a model with " +
                                std::to_string(k) + " outputs");
    auto w = torch::tensor(*weight_, torch::kDouble).to(output.options().requires_grad(false));
    return {t, w};
  }

  std::string who_;
  std::optional<std::vector<double>> weight_;
  std::int64_t ignore_index_;
};

class CrossEntropy : public ClassLoss {
 public:
  CrossEntropy(std::optional<std::vector<double>> weight, std::int64_t ignore_index, double smoothing)
      : ClassLoss("loss 'cross_entropy'", std::move(weight), ignore_index), smoothing_(smoothing) {}

  torch::Tensor forward(const torch::Tensor& output, const torch::Tensor& target) const override {
    const auto [t, w] = prepare(output, target);
    auto o = F::CrossEntropyFuncOptions().ignore_index(ignore_index_).label_smoothing(smoothing_);
    if (w.defined()) o.weight(w);
    return F::cross_entropy(output, t, o);
  }

 private:
  double smoothing_;
};

// For a model whose output already is log-probabilities (a log_softmax head).
class Nll : public ClassLoss {
 public:
  using ClassLoss::ClassLoss;

  torch::Tensor forward(const torch::Tensor& output, const torch::Tensor& target) const override {
    const auto [t, w] = prepare(output, target);
    auto o = F::NLLLossFuncOptions().ignore_index(ignore_index_);
    if (w.defined()) o.weight(w);
    return F::nll_loss(output, t, o);
  }
};

std::shared_ptr<graft::Loss> make_cross_entropy(const graft::Config& c) {
  return std::make_shared<CrossEntropy>(class_weights(c), c.get<std::int64_t>("ignore_index"),
                                        c.get<double>("label_smoothing"));
}

std::shared_ptr<graft::Loss> make_nll(const graft::Config& c) {
  return std::make_shared<Nll>("loss 'nll'", class_weights(c), c.get<std::int64_t>("ignore_index"));
}

}  // namespace

GRAFT_PLUGIN(loss, "cross_entropy", make_cross_entropy,
             "softmax cross-entropy on logits, mean over the batch (torch.nn.functional.cross_entropy)",
             graft::KeySpec("label_smoothing", 0.0, "mix the one-hot target with uniform").min(0).max(1),
             graft::KeySpec("weight", graft::ValueType::number_list, "~", "one weight per class; the mean is then weighted")
                 .non_empty()
                 .min(0)
                 .finite(),
             graft::KeySpec("ignore_index", std::int64_t{-100}, "a target value that contributes nothing"));
GRAFT_PLUGIN(loss, "nll", make_nll,
             "negative log-likelihood of log-probability outputs, mean over the batch (torch.nn.functional.nll_loss)",
             graft::KeySpec("weight", graft::ValueType::number_list, "~", "one weight per class; the mean is then weighted")
                 .non_empty()
                 .min(0)
                 .finite(),
             graft::KeySpec("ignore_index", std::int64_t{-100}, "a target value that contributes nothing"));
