// Optimizer plugins: LibTorch's SGD, Adam, AdamW and RMSprop with PyTorch's keys and
// defaults, behind graft::Optimizer. Each group of the recipe's `optimizer.groups` becomes
// a LibTorch param group; checkpoints hold their state in Python's layout.
#include <sstream>
#include <type_traits>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <graft/optim.h>

#include "fused_sgd.h"

namespace optim = torch::optim;

namespace {

/// The key under which LibTorch's optimizers file a parameter's state (`state()`): its
/// TensorImpl's address, as a string in LibTorch 1.x and as the pointer in 2.x.
template <class Optimizer>
auto state_key(const torch::Tensor& p) {
  using Key = typename std::remove_reference_t<decltype(std::declval<Optimizer&>().state())>::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;  // what c10::guts::to_string(ptr) gives
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
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
          auto& slot = state()[state_key<optim::SGD>(p)];
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

// ---- LibTorch's optimizers behind graft::Optimizer ---------------------------------------
//
// What differs between SGD, Adam, AdamW and RMSprop is in a Traits struct each: how a
// group's settings read under Python's names, which of them is the momentum, and how a
// parameter's state maps to Python's keys. The adapter is the rest.

torch::Tensor cpu(const torch::Tensor& t) { return t.detach().to(torch::kCPU); }
// Python keeps Adam's and RMSprop's step as a float tensor (torch 1.12+)
torch::Tensor step_tensor(std::int64_t step) { return torch::tensor(static_cast<double>(step), torch::kFloat); }
std::int64_t step_of(const graft::State& s) {
  if (!s.has("step")) return 0;
  const auto& v = s.at("step");
  if (const auto* t = std::get_if<torch::Tensor>(&v)) return static_cast<std::int64_t>(t->item<double>());
  return static_cast<std::int64_t>(s.get<double>("step"));
}

/// `key` of `saved` as a tensor for `param`: same shape, on its device, a copy of its own.
torch::Tensor like(const graft::State& saved, const char* key, const torch::Tensor& param) {
  if (!saved.has(key)) return {};
  const auto t = saved.get<torch::Tensor>(key);
  if (t.sizes() != param.sizes())
    throw graft::Error::runtime(fmt::format("'{}' has shape {}, the parameter {}", key, t.sizes(), param.sizes()));
  return t.to(param.device(), param.scalar_type(), /*non_blocking=*/false, /*copy=*/true).contiguous();
}

void put(graft::State& s, const char* key, const torch::Tensor& t) {
  if (t.defined()) s.set(key, cpu(t));
}

struct SgdTraits {
  using Options = optim::SGDOptions;
  using ParamState = optim::SGDParamState;
  static void apply(Options& o, const graft::ParamGroup& g) {
    if (g.momentum) o.momentum(*g.momentum);
  }
  static std::optional<double> momentum(const Options& o) { return o.momentum(); }
  static void set_momentum(Options& o, double m) { o.momentum(m); }
  static graft::State options(const Options& o) {
    graft::State s;
    s.set("lr", o.lr());
    s.set("momentum", o.momentum());
    s.set("dampening", o.dampening());
    s.set("weight_decay", o.weight_decay());
    s.set("nesterov", o.nesterov());
    s.set("maximize", false);
    s.set("foreach", std::monostate{});
    s.set("differentiable", false);
    return s;
  }
  static graft::State state(const ParamState& p) {
    graft::State s;
    put(s, "momentum_buffer", p.momentum_buffer());
    return s;
  }
  static std::unique_ptr<ParamState> restore(const graft::State& s, const torch::Tensor& param) {
    auto p = std::make_unique<ParamState>();
    p->momentum_buffer(like(s, "momentum_buffer", param));
    return p;
  }
};

// Adam and AdamW: the same keys, in Python and in LibTorch.
template <class O, class P> struct AdamTraits {
  using Options = O;
  using ParamState = P;
  static void apply(Options&, const graft::ParamGroup&) {}
  static std::optional<double> momentum(const Options& o) { return std::get<0>(o.betas()); }
  static void set_momentum(Options& o, double m) { o.betas({m, std::get<1>(o.betas())}); }
  static graft::State options(const Options& o) {
    graft::State s;
    s.set("lr", o.lr());
    s.set("betas", std::vector<double>{std::get<0>(o.betas()), std::get<1>(o.betas())});
    s.set("eps", o.eps());
    s.set("weight_decay", o.weight_decay());
    s.set("amsgrad", o.amsgrad());
    s.set("maximize", false);
    s.set("foreach", std::monostate{});
    s.set("capturable", false);
    s.set("differentiable", false);
    return s;
  }
  static graft::State state(const ParamState& p) {
    graft::State s;
    s.set("step", step_tensor(p.step()));
    put(s, "exp_avg", p.exp_avg());
    put(s, "exp_avg_sq", p.exp_avg_sq());
    put(s, "max_exp_avg_sq", p.max_exp_avg_sq());
    return s;
  }
  static std::unique_ptr<ParamState> restore(const graft::State& s, const torch::Tensor& param) {
    auto p = std::make_unique<ParamState>();
    p->step(step_of(s)).exp_avg(like(s, "exp_avg", param)).exp_avg_sq(like(s, "exp_avg_sq", param));
    p->max_exp_avg_sq(like(s, "max_exp_avg_sq", param));
    return p;
  }
};

struct RmspropTraits {
  using Options = optim::RMSpropOptions;
  using ParamState = optim::RMSpropParamState;
  static void apply(Options& o, const graft::ParamGroup& g) {
    if (g.momentum) o.momentum(*g.momentum);
  }
  static std::optional<double> momentum(const Options& o) { return o.momentum(); }
  static void set_momentum(Options& o, double m) { o.momentum(m); }
  static graft::State options(const Options& o) {
    graft::State s;
    s.set("lr", o.lr());
    s.set("momentum", o.momentum());
    s.set("alpha", o.alpha());
    s.set("eps", o.eps());
    s.set("centered", o.centered());
    s.set("weight_decay", o.weight_decay());
    s.set("foreach", std::monostate{});
    s.set("maximize", false);
    s.set("differentiable", false);
    return s;
  }
  static graft::State state(const ParamState& p) {
    graft::State s;
    s.set("step", step_tensor(p.step()));
    put(s, "square_avg", p.square_avg());
    put(s, "momentum_buffer", p.momentum_buffer());
    put(s, "grad_avg", p.grad_avg());
    return s;
  }
  static std::unique_ptr<ParamState> restore(const graft::State& s, const torch::Tensor& param) {
    auto p = std::make_unique<ParamState>();
    p->step(step_of(s)).square_avg(like(s, "square_avg", param)).momentum_buffer(like(s, "momentum_buffer", param));
    p->grad_avg(like(s, "grad_avg", param));
    return p;
  }
};

template <class Torch, class Traits> class Adapter : public graft::Optimizer {
 public:
  using Options = typename Traits::Options;

  Adapter(const std::vector<graft::ParamGroup>& groups, Options base)
      : base_(std::move(base)), torch_(std::vector<optim::OptimizerParamGroup>{}, base_) {
    for (const auto& g : groups) add_group(g);
  }

  void step() override { torch_.step(); }
  std::size_t group_count() const override { return torch_.param_groups().size(); }
  const std::vector<torch::Tensor>& params(std::size_t g) const override { return torch_.param_groups().at(g).params(); }
  void add_group(const graft::ParamGroup& g) override {
    auto o = std::make_unique<Options>(base_);
    o->lr(g.lr);
    o->weight_decay(g.weight_decay);
    Traits::apply(*o, g);
    torch_.add_param_group(optim::OptimizerParamGroup(g.params, std::move(o)));
  }
  void add_params(std::size_t g, const std::vector<torch::Tensor>& params) override {
    auto& list = torch_.param_groups().at(g).params();
    list.insert(list.end(), params.begin(), params.end());
  }
  double lr(std::size_t g) const override { return options(g).lr(); }
  void set_lr(std::size_t g, double lr) override { options(g).lr(lr); }
  std::optional<double> momentum(std::size_t g) const override { return Traits::momentum(options(g)); }
  void set_momentum(std::size_t g, double m) override { Traits::set_momentum(options(g), m); }
  graft::State group_options(std::size_t g) const override { return Traits::options(options(g)); }

  graft::State param_state(const torch::Tensor& p) const override {
    const auto it = torch_.state().find(state_key<Torch>(p));
    if (it == torch_.state().end() || !it->second) return {};
    return Traits::state(static_cast<const typename Traits::ParamState&>(*it->second));
  }
  void load_param_state(const torch::Tensor& p, const graft::State& s) override {
    torch_.state()[state_key<Torch>(p)] = Traits::restore(s, p);
  }

 private:
  Options& options(std::size_t g) const {
    auto& group = const_cast<Torch&>(torch_).param_groups().at(g);
    return static_cast<Options&>(group.options());
  }

  Options base_;
  Torch torch_;
};

template <class Torch, class Traits> graft::OptimizerFactory factory(typename Traits::Options base) {
  return [base](const std::vector<graft::ParamGroup>& groups) -> std::unique_ptr<graft::Optimizer> {
    return std::make_unique<Adapter<Torch, Traits>>(groups, base);
  };
}

graft::OptimizerFactory make_sgd(const graft::Config& c) {
  optim::SGDOptions o(c.get<double>("lr"));
  o.momentum(c.get<double>("momentum")).dampening(c.get<double>("dampening")).weight_decay(c.get<double>("weight_decay"));
  o.nesterov(c.get<bool>("nesterov"));
  if (o.nesterov() && (o.momentum() <= 0 || o.dampening() != 0))
    c["nesterov"].fail("Nesterov momentum requires a momentum and zero dampening");
  return factory<FusedSGD, SgdTraits>(o);
}

std::tuple<double, double> betas(const graft::Config& c) {
  const auto b = c.get<std::vector<double>>("betas");  // two items in [0, 1): declared
  return {b[0], b[1]};
}

graft::OptimizerFactory make_adam(const graft::Config& c) {
  optim::AdamOptions o(c.get<double>("lr"));
  o.betas(betas(c)).eps(c.get<double>("eps")).weight_decay(c.get<double>("weight_decay")).amsgrad(c.get<bool>("amsgrad"));
  return factory<optim::Adam, AdamTraits<optim::AdamOptions, optim::AdamParamState>>(o);
}

graft::OptimizerFactory make_adamw(const graft::Config& c) {
  optim::AdamWOptions o(c.get<double>("lr"));
  o.betas(betas(c)).eps(c.get<double>("eps")).weight_decay(c.get<double>("weight_decay")).amsgrad(c.get<bool>("amsgrad"));
  return factory<optim::AdamW, AdamTraits<optim::AdamWOptions, optim::AdamWParamState>>(o);
}

graft::OptimizerFactory make_rmsprop(const graft::Config& c) {
  optim::RMSpropOptions o(c.get<double>("lr"));
  o.alpha(c.get<double>("alpha")).eps(c.get<double>("eps")).weight_decay(c.get<double>("weight_decay"));
  o.momentum(c.get<double>("momentum")).centered(c.get<bool>("centered"));
  return factory<optim::RMSprop, RmspropTraits>(o);
}

}  // namespace

GRAFT_PLUGIN(optimizer, "sgd", make_sgd, "SGD with momentum, dampening, weight decay, Nesterov (torch.optim.SGD)",
             graft::KeySpec::required_key("lr", graft::ValueType::number, "learning rate").min(0),
             graft::KeySpec("momentum", 0.0, "momentum factor").min(0), graft::KeySpec("dampening", 0.0, "dampening"),
             graft::KeySpec("weight_decay", 0.0, "L2 penalty").min(0), graft::KeySpec("nesterov", false, "Nesterov momentum"));
GRAFT_PLUGIN(optimizer, "adam", make_adam, "Adam (torch.optim.Adam)", graft::KeySpec("lr", 1e-3, "learning rate").min(0),
             graft::KeySpec("betas", std::vector<double>{0.9, 0.999}, "running average coefficients").min(0).less_than(1).length(2),
             graft::KeySpec("eps", 1e-8, "denominator term").min(0), graft::KeySpec("weight_decay", 0.0, "L2 penalty").min(0),
             graft::KeySpec("amsgrad", false, "AMSGrad variant"));
GRAFT_PLUGIN(optimizer, "adamw", make_adamw, "AdamW, decoupled weight decay (torch.optim.AdamW)",
             graft::KeySpec("lr", 1e-3, "learning rate").min(0),
             graft::KeySpec("betas", std::vector<double>{0.9, 0.999}, "running average coefficients").min(0).less_than(1).length(2),
             graft::KeySpec("eps", 1e-8, "denominator term").min(0), graft::KeySpec("weight_decay", 1e-2, "decoupled weight decay").min(0),
             graft::KeySpec("amsgrad", false, "AMSGrad variant"));
GRAFT_PLUGIN(optimizer, "rmsprop", make_rmsprop, "RMSprop (torch.optim.RMSprop)", graft::KeySpec("lr", 1e-2, "learning rate").min(0),
             graft::KeySpec("alpha", 0.99, "smoothing constant").min(0), graft::KeySpec("eps", 1e-8, "denominator term").min(0),
             graft::KeySpec("weight_decay", 0.0, "L2 penalty").min(0), graft::KeySpec("momentum", 0.0, "momentum factor").min(0),
             graft::KeySpec("centered", false, "centered RMSprop"));
