#include "graft/plan.h"

#include "graft/model.h"

namespace graft {

const Schema& recipe_schema() {
  static const Schema schema = {
      KeySpec("description", "", "what this recipe is for"),
      KeySpec("plugins", std::vector<std::string>{}, "extra plugin libraries or directories, relative to the recipe"),
      KeySpec("seed", 0, "seed of every random draw of the run"),
      KeySpec::required_key("model", ValueType::section, "the network: backbone, weights, surgery, ..."),
  };
  return schema;
}

const Schema& model_schema() {
  static const Schema schema = {
      KeySpec::required_key("backbone", ValueType::any, "backbone plugin: a name, or a map with name: and its keys"),
      KeySpec("weights", ValueType::any, "~",
              "pretrained weights: a .pth path, torchvision:NAME, an http(s) URL, or a map with from: and key mapping"),
  };
  return schema;
}

namespace {
PluginUse resolve(const Registry& registry, Kind kind, const Config& spec) {
  const Config checked = registry.validated_spec(kind, spec);
  const auto* plugin = registry.find(kind, Registry::spec_name(spec));
  return PluginUse{kind, plugin->entry.name, plugin->library, spec.path(), spec.where()};
}
}  // namespace

Plan check_recipe(const Recipe& recipe, const Registry& registry) {
  Plan plan;
  // `base` was consumed by the loader; it is still a known key for the messages.
  const Config root = recipe.root.validated(recipe_schema(), "the recipe", {"base"});
  plan.seed = root.get<std::int64_t>("seed");
  const Config model = root["model"].validated(model_schema(), "model");
  plan.plugins.push_back(resolve(registry, Kind::backbone, model["backbone"]));
  if (!model["weights"].is_null()) parse_weights_spec(model["weights"]);
  return plan;
}

BuiltModel build_model(const Recipe& recipe, const Registry& registry) {
  check_recipe(recipe, registry);
  const Config model = recipe.root["model"];
  BuiltModel built;
  built.module = registry.create<Kind::backbone>(model["backbone"]);
  built.backbone = Registry::spec_name(model["backbone"]);
  if (!model["weights"].is_null()) {
    const WeightsSpec spec = parse_weights_spec(model["weights"]);
    std::string path;
    try {
      path = resolve_weights(spec.source);
    } catch (const Error& e) {
      throw Error(e.kind(), e.message(), model["weights"].where());
    }
    const StateDict file = map_keys(load_state_dict(path), spec.mapping);
    built.weights = load_weights(*built.module.ptr(), file, spec.strict, path);
  }
  return built;
}

}  // namespace graft
