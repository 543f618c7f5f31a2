#include "trainable_set.h"

#include "graft/host/optimizer_plan.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "graft/error.h"
#include "graft/log.h"

namespace graft::train {

TrainableSet::TrainableSet(const Recipe& recipe, const Registry& registry, torch::nn::Module& model)
    : recipe_(recipe), registry_(registry), model_(model) {
  freezers_ = make_freezers(recipe, registry);
  info_ = model_info(model);
  frozen_ = freeze_state(freezers_, info_, 0, 0);
  apply();
  const OptimizerPlan plan = plan_optimizer(recipe, registry, model, frozen_);
  optimizer_name_ = plan.optimizer;
  who_ = registry.label(Kind::optimizer, recipe.root["optimizer"]);
  where_ = recipe.root["optimizer"].where();
  optimizer_ = make_optimizer(recipe, registry, plan);
  for (std::size_t k = 0; k < plan.groups.size(); ++k)
    groups_.push_back({plan.groups[k].name, plan.groups[k].lr, optimizer_->momentum(k)});
}

void TrainableSet::apply() const { apply_freeze(model_, frozen_); }

bool TrainableSet::advance(std::int64_t epoch, std::int64_t step) {
  FreezeState now = freeze_state(freezers_, info_, epoch, step);
  if (now.frozen == frozen_.frozen && now.eval_modules == frozen_.eval_modules) return false;
  apply_freeze(model_, now);
  const OptimizerPlan next = plan_optimizer(recipe_, registry_, model_, now);
  std::map<const void*, bool> held;
  for (std::size_t g = 0; g < optimizer_->group_count(); ++g)
    for (const auto& t : optimizer_->params(g)) held[t.unsafeGetTensorImpl()] = true;
  std::size_t added = 0;
  for (const auto& g : next.groups) {
    ParamGroup fresh = g;
    fresh.params.clear();
    fresh.names.clear();
    for (std::size_t i = 0; i < g.params.size(); ++i)
      if (!held.count(g.params[i].unsafeGetTensorImpl())) {
        fresh.params.push_back(g.params[i]);
        fresh.names.push_back(g.names[i]);
      }
    if (fresh.params.empty()) continue;
    // the same group: same name and lr (two milestones of one epoch share a name)
    const auto it = std::find_if(groups_.begin(), groups_.end(),
                                 [&](const GroupInfo& gi) { return gi.name == g.name && gi.base_lr == g.lr; });
    if (it != groups_.end()) {
      optimizer_->add_params(static_cast<std::size_t>(it - groups_.begin()), fresh.params);
    } else {
      optimizer_->add_group(fresh);
      groups_.push_back({fresh.name, fresh.lr, optimizer_->momentum(optimizer_->group_count() - 1)});
      ++added;
    }
  }
  log::info("epoch {}: unfroze {} tensors{}", epoch + 1, frozen_.frozen.size() - now.frozen.size(),
            added == 0 ? "" : fmt::format(" ({} new optimizer groups)", added));
  frozen_ = std::move(now);
  return true;
}

std::vector<std::vector<std::string>> TrainableSet::param_names() const {
  std::map<const void*, std::string> name_of;
  for (const auto& p : model_.named_parameters()) name_of[p.value().unsafeGetTensorImpl()] = p.key();
  std::vector<std::vector<std::string>> out;
  for (std::size_t g = 0; g < optimizer_->group_count(); ++g) {
    out.emplace_back();
    for (const auto& p : optimizer_->params(g)) {
      const auto it = name_of.find(p.unsafeGetTensorImpl());
      if (it == name_of.end())
        throw Error::runtime("the optimizer (" + optimizer_name_ + ") holds a tensor that is not a parameter of the model");
      out.back().push_back(it->second);
    }
  }
  return out;
}

}  // namespace graft::train
