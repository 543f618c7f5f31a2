#include "graft/host/modules.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <algorithm>

#include "graft/host/recipe.h"
#include "graft/host/watch.h"

namespace graft {

namespace {
thread_local const ModuleScope* current = nullptr;

std::string shape_str(const std::vector<std::int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }
}  // namespace

const std::vector<std::string>& inferred_keys() {
  static const std::vector<std::string> keys = {"in_features", "in_channels", "channels", "num_features"};
  return keys;
}

ModuleScope::ModuleScope(const Registry& r, std::vector<std::int64_t> in)
    : registry(r), input(std::move(in)), outer_(current) {
  current = this;
}

ModuleScope::~ModuleScope() { current = outer_; }

PlacedModule build_module_at(const Registry& registry, const Config& given, const std::vector<std::int64_t>& input,
                             bool probe) {
  Config spec = given;
  const auto& plugin = registry.get(Kind::module, Registry::spec_name(spec), spec.is_map() ? spec["name"] : spec);
  std::string hints;
  for (const auto& key : inferred_keys()) {
    const bool declared = std::any_of(plugin.entry.keys.begin(), plugin.entry.keys.end(),
                                      [&](const KeySpec& k) { return k.name == key; });
    const bool written = spec.is_map() && spec.has(key) && spec[key].scalar() != "0";
    if (!declared || written) continue;
    if (input.size() < 2)
      spec.fail("cannot infer " + key + " for module " + plugin.entry.name + " here (what flows in is not known); give it");
    hints += fmt::format("{}: {}\n", key, input[1]);
  }
  if (!hints.empty()) {
    const Config base = spec.is_map() ? spec : parse_yaml_text("name: " + spec.scalar(), spec.where().str());
    spec = Config(merge(base, parse_yaml_text(hints, "inferred")).node(), spec.path());
  }
  PlacedModule placed;
  {
    ModuleScope scope(registry, input);
    placed.module = registry.create<Kind::module>(spec);
  }
  if (probe && !input.empty()) {
    EvalScope eval(*placed.module.ptr());
    try {
      placed.output_shape = placed.module.forward(torch::zeros(input)).sizes().vec();
    } catch (const c10::Error& e) {
      const std::string what = e.what_without_backtrace();
      given.fail("module " + plugin.entry.name + " does not run on what flows in here, " + shape_str(input) + ": " +
                 what.substr(0, what.find('\n')));
    }
  }
  return placed;
}

PlacedModule build_module(const Config& spec, const std::vector<std::int64_t>& input) {
  if (!current) spec.fail("graft::build_module is only available inside a backbone or module factory that graft calls");
  return build_module_at(current->registry, spec, input, /*probe=*/true);
}

std::vector<std::int64_t> incoming_shape() { return current ? current->input : std::vector<std::int64_t>{}; }

}  // namespace graft
