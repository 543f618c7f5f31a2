// Optimizer plugins: LibTorch's SGD, Adam, AdamW and RMSprop with PyTorch's keys and
// defaults. Each group of the recipe's `optimizer.groups` becomes a LibTorch param group.
#include <torch/torch.h>

#include <graft/optim.h>

#include "fused_sgd.h"

namespace optim = torch::optim;

namespace {

double non_negative(const graft::Config& c, const std::string& key) {
  const double v = c.get<double>(key);
  if (v < 0) c[key].fail("must be >= 0, got " + std::to_string(v));
  return v;
}

// torch.optim.SGD's update in one pass over each parameter, for dense float32 CPU
// parameters (the rest take LibTorch's own SGD math): per element,
//   d = g + wd*p;  buf = m*buf + (1 - dampening)*d  (buf = d on the first step);
//   d = nesterov ? d + m*buf : buf;  p -= lr*d
// LibTorch's SGD makes four to six passes over memory with a temporary per parameter;
// this reads p, g and buf once and writes p and buf once. The state is LibTorch's own
// SGDParamState (checkpoints, resume and Python's layout see no difference).
class FusedSGD : public optim::SGD {
 public:
  using optim::SGD::SGD;

  torch::Tensor step(LossClosure closure = nullptr) override {
    if (closure != nullptr) return optim::SGD::step(closure);
    torch::NoGradGuard no_grad;
    for (auto& group : param_groups()) {
      const auto& o = static_cast<const optim::SGDOptions&>(group.options());
      for (auto& p : group.params()) {
        if (!p.grad().defined()) continue;
        const torch::Tensor& g = p.grad();
        optim::SGDParamState* st = nullptr;  // with momentum only, as LibTorch's SGD
        if (o.momentum() != 0) {
          auto& slot = state()[graft::optimizer_state_key<optim::SGD>(p)];
          if (!slot) slot = std::make_unique<optim::SGDParamState>();
          st = static_cast<optim::SGDParamState*>(slot.get());
        }
        if (fusable(p, g, st)) update(p, g, st, o);
        else reference(p, g, st, o);
      }
    }
    return {};
  }

 private:
  static bool fusable(const torch::Tensor& p, const torch::Tensor& g, optim::SGDParamState* st) {
    auto ok = [&](const torch::Tensor& t) {
      return t.device().is_cpu() && t.layout() == torch::kStrided && t.scalar_type() == torch::kFloat && t.is_contiguous();
    };
    if (!ok(p) || !ok(g) || g.numel() != p.numel()) return false;
    return st == nullptr || !st->momentum_buffer().defined() || ok(st->momentum_buffer());
  }

  static void update(torch::Tensor& p, const torch::Tensor& g, optim::SGDParamState* st, const optim::SGDOptions& o) {
    graft::kernels::SgdStep s;
    s.lr = static_cast<float>(o.lr());
    s.weight_decay = static_cast<float>(o.weight_decay());
    s.momentum = static_cast<float>(o.momentum());
    s.dampening = static_cast<float>(o.dampening());
    s.nesterov = o.nesterov();
    float* buf = nullptr;
    if (st != nullptr) {
      if (!st->momentum_buffer().defined()) {
        st->momentum_buffer(torch::empty_like(p, torch::MemoryFormat::Contiguous));
        s.first = true;
      }
      buf = st->momentum_buffer().data_ptr<float>();
    }
    graft::kernels::sgd_update(p.data_ptr<float>(), g.data_ptr<float>(), buf, p.numel(), s);
  }

  // LibTorch's SGD for one parameter (what optim::SGD::step does)
  static void reference(torch::Tensor& p, const torch::Tensor& g, optim::SGDParamState* st, const optim::SGDOptions& o) {
    torch::Tensor d = g;
    if (o.weight_decay() != 0) d = d.add(p, o.weight_decay());
    if (st != nullptr) {
      torch::Tensor buf = st->momentum_buffer();
      if (!buf.defined()) {
        st->momentum_buffer(torch::clone(d).detach());
        buf = st->momentum_buffer();
      } else {
        buf.mul_(o.momentum()).add_(d, 1 - o.dampening());
      }
      d = o.nesterov() ? d.add(buf, o.momentum()) : buf;
    }
    p.add_(d, -o.lr());
  }
};

template <class Options, class Optimizer>
graft::OptimizerFactory factory(Options base, bool has_momentum) {
  return [base, has_momentum](const std::vector<graft::ParamGroup>& groups) -> std::unique_ptr<optim::Optimizer> {
    std::vector<optim::OptimizerParamGroup> pg;
    for (const auto& g : groups) {
      auto o = std::make_unique<Options>(base);
      o->lr(g.lr);
      o->weight_decay(g.weight_decay);
      if constexpr (std::is_same_v<Options, optim::SGDOptions> || std::is_same_v<Options, optim::RMSpropOptions>) {
        if (g.momentum) o->momentum(*g.momentum);
      }
      (void)has_momentum;
      pg.emplace_back(g.params, std::move(o));
    }
    return std::make_unique<Optimizer>(pg, base);
  };
}

graft::OptimizerFactory make_sgd(const graft::Config& c) {
  optim::SGDOptions o(non_negative(c, "lr"));
  o.momentum(non_negative(c, "momentum")).dampening(c.get<double>("dampening")).weight_decay(non_negative(c, "weight_decay"));
  o.nesterov(c.get<bool>("nesterov"));
  if (o.nesterov() && (o.momentum() <= 0 || o.dampening() != 0))
    c["nesterov"].fail("Nesterov momentum requires a momentum and zero dampening");
  return factory<optim::SGDOptions, FusedSGD>(o, true);
}

std::tuple<double, double> betas(const graft::Config& c) {
  const auto b = c.get<std::vector<double>>("betas");
  if (b.size() != 2 || b[0] < 0 || b[0] >= 1 || b[1] < 0 || b[1] >= 1) c["betas"].fail("must be two numbers in [0, 1)");
  return {b[0], b[1]};
}

graft::OptimizerFactory make_adam(const graft::Config& c) {
  optim::AdamOptions o(non_negative(c, "lr"));
  o.betas(betas(c)).eps(non_negative(c, "eps")).weight_decay(non_negative(c, "weight_decay")).amsgrad(c.get<bool>("amsgrad"));
  return factory<optim::AdamOptions, optim::Adam>(o, false);
}

graft::OptimizerFactory make_adamw(const graft::Config& c) {
  optim::AdamWOptions o(non_negative(c, "lr"));
  o.betas(betas(c)).eps(non_negative(c, "eps")).weight_decay(non_negative(c, "weight_decay")).amsgrad(c.get<bool>("amsgrad"));
  return factory<optim::AdamWOptions, optim::AdamW>(o, false);
}

graft::OptimizerFactory make_rmsprop(const graft::Config& c) {
  optim::RMSpropOptions o(non_negative(c, "lr"));
  o.alpha(non_negative(c, "alpha")).eps(non_negative(c, "eps")).weight_decay(non_negative(c, "weight_decay"));
  o.momentum(non_negative(c, "momentum")).centered(c.get<bool>("centered"));
  return factory<optim::RMSpropOptions, optim::RMSprop>(o, true);
}

}  // namespace

GRAFT_PLUGIN(optimizer, "sgd", make_sgd, "SGD with momentum, dampening, weight decay, Nesterov (torch.optim.SGD)",
             graft::KeySpec::required_key("lr", graft::ValueType::number, "learning rate"),
             graft::KeySpec("momentum", 0.0, "momentum factor"), graft::KeySpec("dampening", 0.0, "dampening"),
             graft::KeySpec("weight_decay", 0.0, "L2 penalty"), graft::KeySpec("nesterov", false, "Nesterov momentum"));
GRAFT_PLUGIN(optimizer, "adam", make_adam, "Adam (torch.optim.Adam)", graft::KeySpec("lr", 1e-3, "learning rate"),
             graft::KeySpec("betas", std::vector<double>{0.9, 0.999}, "running average coefficients"),
             graft::KeySpec("eps", 1e-8, "denominator term"), graft::KeySpec("weight_decay", 0.0, "L2 penalty"),
             graft::KeySpec("amsgrad", false, "AMSGrad variant"));
GRAFT_PLUGIN(optimizer, "adamw", make_adamw, "AdamW, decoupled weight decay (torch.optim.AdamW)",
             graft::KeySpec("lr", 1e-3, "learning rate"),
             graft::KeySpec("betas", std::vector<double>{0.9, 0.999}, "running average coefficients"),
             graft::KeySpec("eps", 1e-8, "denominator term"), graft::KeySpec("weight_decay", 1e-2, "decoupled weight decay"),
             graft::KeySpec("amsgrad", false, "AMSGrad variant"));
GRAFT_PLUGIN(optimizer, "rmsprop", make_rmsprop, "RMSprop (torch.optim.RMSprop)", graft::KeySpec("lr", 1e-2, "learning rate"),
             graft::KeySpec("alpha", 0.99, "smoothing constant"), graft::KeySpec("eps", 1e-8, "denominator term"),
             graft::KeySpec("weight_decay", 0.0, "L2 penalty"), graft::KeySpec("momentum", 0.0, "momentum factor"),
             graft::KeySpec("centered", false, "centered RMSprop"));
