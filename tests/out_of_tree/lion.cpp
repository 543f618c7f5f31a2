// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), an optimizer
// graft does not ship, written against the SDK alone: graft::Optimizer, its state by
// parameter in Python's layout (lion-pytorch's keys), and its settings for `graft check`.
//   c = beta1*m + (1-beta1)*g;  p = p*(1 - lr*wd) - lr*sign(c);  m = beta2*m + (1-beta2)*g
#include <map>

#include <torch/torch.h>

#include <graft/optim.h>

namespace {

class Lion : public graft::Optimizer {
 public:
  struct Settings {
    double beta1 = 0.9, beta2 = 0.99;
  };

  Lion(const std::vector<graft::ParamGroup>& groups, Settings s) : settings_(s) {
    for (const auto& g : groups) add_group(g);
  }

  void step() override {
    torch::NoGradGuard no_grad;
    for (auto& g : groups_)
      for (auto& p : g.params) {
        if (!p.grad().defined()) continue;
        const auto& grad = p.grad();
        auto& m = exp_avg_[p.unsafeGetTensorImpl()];
        if (!m.defined()) m = torch::zeros_like(p, torch::MemoryFormat::Preserve);
        const auto update = (m * g.beta1 + grad * (1 - g.beta1)).sign_();
        if (g.weight_decay != 0) p.mul_(1 - g.lr * g.weight_decay);
        p.add_(update, -g.lr);
        m.mul_(g.beta2).add_(grad, 1 - g.beta2);
      }
  }

  std::size_t group_count() const override { return groups_.size(); }
  const std::vector<torch::Tensor>& params(std::size_t g) const override { return groups_.at(g).params; }
  void add_group(const graft::ParamGroup& g) override {
    groups_.push_back({g.params, g.lr, g.weight_decay, g.momentum.value_or(settings_.beta1), settings_.beta2});
  }
  void add_params(std::size_t g, const std::vector<torch::Tensor>& params) override {
    auto& list = groups_.at(g).params;
    list.insert(list.end(), params.begin(), params.end());
  }
  double lr(std::size_t g) const override { return groups_.at(g).lr; }
  void set_lr(std::size_t g, double lr) override { groups_.at(g).lr = lr; }
  std::optional<double> momentum(std::size_t g) const override { return groups_.at(g).beta1; }
  void set_momentum(std::size_t g, double m) override { groups_.at(g).beta1 = m; }

  graft::State group_options(std::size_t g) const override {
    const auto& x = groups_.at(g);
    graft::State s;
    s.set("lr", x.lr);
    s.set("betas", std::vector<double>{x.beta1, x.beta2});
    s.set("weight_decay", x.weight_decay);
    return s;
  }
  graft::State param_state(const torch::Tensor& p) const override {
    graft::State s;
    const auto it = exp_avg_.find(p.unsafeGetTensorImpl());
    if (it != exp_avg_.end()) s.set("exp_avg", it->second);
    return s;
  }
  void load_param_state(const torch::Tensor& p, const graft::State& s) override {
    const auto m = s.get<torch::Tensor>("exp_avg");
    if (m.sizes() != p.sizes()) throw graft::Error::runtime("'exp_avg' has another shape than its parameter");
    exp_avg_[p.unsafeGetTensorImpl()] = m.to(p.device(), p.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
  }

 private:
  struct Group {
    std::vector<torch::Tensor> params;
    double lr, weight_decay, beta1, beta2;
  };
  Settings settings_;
  std::vector<Group> groups_;
  std::map<const void*, torch::Tensor> exp_avg_;
};

graft::OptimizerFactory make_lion(const graft::Config& c) {
  const auto betas = c.get<std::vector<double>>("betas");  // two items in [0, 1): declared
  const Lion::Settings s{betas[0], betas[1]};
  return [s](const std::vector<graft::ParamGroup>& groups) -> std::unique_ptr<graft::Optimizer> {
    return std::make_unique<Lion>(groups, s);
  };
}

}  // namespace

GRAFT_PLUGIN(optimizer, "lion", make_lion, "Lion, sign of an interpolated momentum (Chen et al. 2023)",
             graft::KeySpec("lr", 1e-4, "learning rate").min(0),
             graft::KeySpec("betas", std::vector<double>{0.9, 0.99}, "interpolation and momentum coefficients")
                 .min(0).less_than(1).length(2),
             graft::KeySpec("weight_decay", 0.0, "decoupled weight decay").min(0));
