#include "callbacks.h"

#include <fmt/format.h>

#include "graft/log.h"

namespace graft::train {

namespace {
template <class T, Kind K>
void make_list(const Registry& registry, Config node, std::vector<std::shared_ptr<T>>& out, std::vector<std::string>& names,
               std::vector<std::string>& labels, std::vector<SourceLoc>& where) {
  if (node.is_null()) return;
  if (!node.is_list()) node.fail(std::string("expected a list of ") + kind_name(K) + " plugins");
  for (const auto& item : node.items()) {
    out.push_back(registry.create<K>(item));
    names.push_back(Registry::spec_name(item));
    labels.push_back(registry.label(K, item));
    where.push_back(item.where());
  }
}

template <class T>
std::vector<std::pair<std::string, Stateful*>> labelled(const std::vector<std::shared_ptr<T>>& list,
                                                        const std::vector<std::string>& names) {
  std::vector<std::pair<std::string, Stateful*>> out;
  for (std::size_t k = 0; k < list.size(); ++k) out.emplace_back(fmt::format("{}:{}", k, names[k]), list[k].get());
  return out;
}
}  // namespace

Callbacks::Callbacks(const Recipe& recipe, const Registry& registry) {
  make_list<Hook, Kind::hook>(registry, recipe.root["hooks"], hooks_, hook_names_, all_labels_, all_where_);
  Config checkpoint = recipe.root["checkpoint"];
  if (checkpoint.is_null()) checkpoint = parse_yaml_text("[save_last, on_signal]", "default checkpoint strategies");
  make_list<CheckpointStrategy, Kind::checkpoint>(registry, checkpoint, strategies_, strategy_names_, all_labels_, all_where_);
  all_.assign(hooks_.begin(), hooks_.end());
  all_.insert(all_.end(), strategies_.begin(), strategies_.end());
}

std::string position_text(const TrainContext& ctx) {
  return fmt::format(" at epoch {}, batch {}, step {}", ctx.epoch + 1, ctx.batch + 1, ctx.step);
}

void Callbacks::exception(TrainContext& ctx, const std::exception& error) noexcept {
  for (auto& h : all_) {
    try {
      h->on_exception(ctx, error);
    } catch (const std::exception& again) {
      log::error("a hook failed while handling the error: {}", again.what());
    }
  }
}

std::vector<std::pair<std::string, Stateful*>> Callbacks::hook_states() const { return labelled(hooks_, hook_names_); }
std::vector<std::pair<std::string, Stateful*>> Callbacks::strategy_states() const {
  return labelled(strategies_, strategy_names_);
}

}  // namespace graft::train
