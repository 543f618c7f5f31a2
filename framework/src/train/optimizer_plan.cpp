// Freezing policies and optimizer parameter groups: what trains, and how.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <functional>

#include "graft/glob.h"
#include "graft/model.h"
#include "graft/host/optimizer_plan.h"
#include "graft/host/weights.h"

namespace graft {

namespace {
void walk(const torch::nn::Module& m, const std::string& path, ModelInfo& info) {
  info.modules.emplace_back(path, type_name(m));
  for (const auto& c : m.named_children()) walk(*c.value(), path.empty() ? c.key() : path + "." + c.key(), info);
}

bool is_norm_type(const std::string& t) {
  return t.find("Norm") != std::string::npos;  // BatchNorm*, GroupNorm, LayerNorm, InstanceNorm*
}
}  // namespace

ModelInfo model_info(const torch::nn::Module& model) {
  ModelInfo info;
  for (const auto& p : model.named_parameters()) info.parameters.push_back(p.key());
  walk(model, "", info);
  for (const auto& c : model.named_children())
    if (!c.value()->parameters().empty()) info.stages.push_back(c.key());
  return info;
}

std::vector<std::shared_ptr<Freezer>> make_freezers(const Recipe& recipe, const Registry& registry) {
  std::vector<std::shared_ptr<Freezer>> out;
  const Config list = recipe.root["model"]["freeze"];
  for (const auto& spec : list.items()) out.push_back(registry.create<Kind::freezer>(spec));
  return out;
}

FreezeState freeze_state(const std::vector<std::shared_ptr<Freezer>>& freezers, const ModelInfo& info,
                         std::int64_t epoch, std::int64_t step) {
  FreezeState state;
  for (const auto& f : freezers) f->apply(info, epoch, step, state);
  return state;
}

void apply_freeze(torch::nn::Module& model, const FreezeState& state) {
  for (auto& p : model.named_parameters()) p.value().set_requires_grad(!state.frozen.count(p.key()));
  std::function<void(torch::nn::Module&, const std::string&)> visit = [&](torch::nn::Module& m, const std::string& path) {
    if (state.eval_modules.count(path)) m.eval();
    for (const auto& c : m.named_children()) visit(*c.value(), path.empty() ? c.key() : path + "." + c.key());
  };
  visit(model, "");
}

namespace {
struct Rule {
  std::vector<std::string> globs;
  bool bias = false, norm = false;
  std::optional<double> lr, lr_mult, weight_decay, momentum;
  std::string label;
};

std::vector<Rule> parse_rules(const Config& groups) {
  std::vector<Rule> rules;
  if (groups.is_null()) return rules;
  if (!groups.is_list()) groups.fail("expected a list of rules ({params: 'fc.*', lr: 0.01}, {bias: true, weight_decay: 0}, ...)");
  const Schema schema = {
      KeySpec("params", ValueType::any, "~", "glob or list of globs on parameter names"),
      KeySpec("bias", false, "only biases"),
      KeySpec("norm", false, "only parameters of normalization layers"),
      KeySpec("lr", ValueType::number, "~", "learning rate").min(0),
      KeySpec("lr_mult", ValueType::number, "~", "learning rate as a multiple of the optimizer's").min(0),
      KeySpec("weight_decay", ValueType::number, "~", "weight decay").min(0),
      KeySpec("momentum", ValueType::number, "~", "momentum (sgd, rmsprop)").min(0),
  };
  for (const auto& item : groups.items()) {
    const Config c = item.validated(schema, "a parameter group rule");
    Rule r;
    if (c.has("params")) {
      if (c["params"].is_scalar()) r.globs.push_back(c.get<std::string>("params"));
      else r.globs = c.get<std::vector<std::string>>("params");
    }
    r.bias = c.get<bool>("bias");
    r.norm = c.get<bool>("norm");
    if (r.globs.empty() && !r.bias && !r.norm) item.fail("selects nothing: give params: (globs), bias: true or norm: true");
    if (c.has("lr") && c.has("lr_mult")) item.fail("give lr or lr_mult, not both");
    for (const char* k : {"lr", "lr_mult", "weight_decay", "momentum"}) {
      if (!c.has(k)) continue;
      const double v = c.get<double>(k);  // >= 0: declared
      (std::string(k) == "lr" ? r.lr : std::string(k) == "lr_mult" ? r.lr_mult : std::string(k) == "weight_decay" ? r.weight_decay : r.momentum) = v;
    }
    r.label = c.has("params") ? fmt::format("{}", fmt::join(r.globs, ",")) : r.bias ? "bias" : "norm";
    if (r.bias && c.has("params")) r.label += "+bias";
    if (r.norm && (c.has("params") || r.bias)) r.label += "+norm";
    rules.push_back(r);
  }
  return rules;
}
}  // namespace

OptimizerPlan plan_optimizer(const Recipe& recipe, const Registry& registry, const torch::nn::Module& model,
                             const FreezeState& state) {
  OptimizerPlan plan;
  const Config spec_node = recipe.root["optimizer"];
  if (spec_node.is_null()) recipe.root.fail("has no optimizer: section");
  const Config spec = registry.validated_spec(Kind::optimizer, spec_node, {"groups"});
  plan.optimizer = Registry::spec_name(spec_node);
  const double base_lr = spec.get<double>("lr");
  const double base_wd = spec.get<double>("weight_decay");
  const auto rules = parse_rules(spec_node.is_map() ? spec_node["groups"] : Config());

  // module path -> type, to tell which parameters belong to normalization layers
  std::map<std::string, std::string> owner_type;
  for (const auto& [path, type] : model_info(model).modules) owner_type[path] = type;
  auto owner = [](const std::string& name) {
    const auto dot = name.rfind('.');
    return dot == std::string::npos ? std::string() : name.substr(0, dot);
  };

  std::vector<ParamGroup> groups(rules.size() + 1);
  groups[0].name = "default";
  groups[0].lr = base_lr;
  groups[0].weight_decay = base_wd;
  for (std::size_t k = 0; k < rules.size(); ++k) {
    auto& g = groups[k + 1];
    const auto& r = rules[k];
    g.name = r.label;
    g.lr = r.lr ? *r.lr : base_lr * r.lr_mult.value_or(1.0);
    g.weight_decay = r.weight_decay.value_or(base_wd);
    g.momentum = r.momentum;
  }
  std::map<std::pair<std::int64_t, double>, ParamGroup> unfrozen;  // (epoch, lr) -> group
  for (const auto& p : model.named_parameters()) {
    const std::string& name = p.key();
    if (state.frozen.count(name)) {
      plan.frozen.push_back(name);
      continue;
    }
    if (const auto it = state.lr.find(name); it != state.lr.end()) {
      const std::int64_t epoch = state.unfrozen_at.count(name) ? state.unfrozen_at.at(name) : 0;
      auto& g = unfrozen[{epoch, it->second}];
      g.name = fmt::format("unfrozen@{}", epoch);
      g.lr = it->second;
      g.weight_decay = base_wd;
      g.names.push_back(name);
      g.params.push_back(p.value());
      continue;
    }
    std::size_t target = 0;
    for (std::size_t k = 0; k < rules.size(); ++k) {
      const auto& r = rules[k];
      if (!r.globs.empty() && std::none_of(r.globs.begin(), r.globs.end(), [&](const std::string& g) { return glob_match(g, name); }))
        continue;
      if (r.bias && !(name == "bias" || (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0))) continue;
      if (r.norm && !is_norm_type(owner_type[owner(name)])) continue;
      target = k + 1;
      break;
    }
    groups[target].names.push_back(name);
    groups[target].params.push_back(p.value());
  }
  for (auto& g : groups)
    if (!g.params.empty()) plan.groups.push_back(std::move(g));
  for (auto& [key, g] : unfrozen) plan.groups.push_back(std::move(g));
  return plan;
}

std::unique_ptr<Optimizer> make_optimizer(const Recipe& recipe, const Registry& registry, const OptimizerPlan& plan) {
  const auto factory = registry.create<Kind::optimizer>(recipe.root["optimizer"], {"groups"});
  if (plan.groups.empty()) recipe.root["optimizer"].fail("nothing to optimise: every parameter is frozen");
  auto optimizer = factory(plan.groups);
  if (!optimizer) throw Error::runtime("optimizer " + plan.optimizer + ": its factory returned no optimizer");
  if (optimizer->group_count() != plan.groups.size())
    throw Error::runtime(fmt::format("optimizer {}: given {} parameter groups, it holds {}", plan.optimizer,
                                     plan.groups.size(), optimizer->group_count()));
  return optimizer;
}

}  // namespace graft
