#include "callbacks.h"

#include <fmt/format.h>

#include <filesystem>

#include "graft/log.h"

namespace graft::train {

namespace fs = std::filesystem;

namespace {
template <class T, Kind K>
void make_list(const Registry& registry, Config node, std::vector<std::shared_ptr<T>>& out, std::vector<std::string>& names,
               std::vector<std::string>& labels) {
  if (node.is_null()) return;
  if (!node.is_list()) node.fail(std::string("expected a list of ") + kind_name(K) + " plugins");
  for (const auto& item : node.items()) {
    out.push_back(registry.create<K>(item));
    names.push_back(Registry::spec_name(item));
    const auto* plugin = registry.find(K, names.back());
    labels.push_back(fmt::format("{} '{}' ({})", kind_name(K), names.back(),
                                 plugin ? fs::path(plugin->library).filename().string() : "?"));
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
  make_list<Hook, Kind::hook>(registry, recipe.root["hooks"], hooks_, hook_names_, all_labels_);
  Config checkpoint = recipe.root["checkpoint"];
  if (checkpoint.is_null()) checkpoint = parse_yaml_text("[save_last, on_signal]", "default checkpoint strategies");
  make_list<CheckpointStrategy, Kind::checkpoint>(registry, checkpoint, strategies_, strategy_names_, all_labels_);
  all_.assign(hooks_.begin(), hooks_.end());
  all_.insert(all_.end(), strategies_.begin(), strategies_.end());
}

void Callbacks::fail(std::size_t index, const std::exception& error) const {
  const auto* e = dynamic_cast<const Error*>(&error);
  std::string what = e ? e->message() : error.what();
  what = what.substr(0, what.find('\n'));
  const std::string at = ctx_ ? fmt::format(" at epoch {}, batch {}, step {}", ctx_->epoch + 1, ctx_->batch + 1, ctx_->step) : "";
  throw Error(e ? e->kind() : Error::Kind::runtime, all_labels_[index] + " failed" + at + ": " + what);
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
