#include "graft/host/build.h"
#include "graft/host/check.h"
#include "graft/host/weights.h"

#include "graft/host/data_plan.h"
#include "graft/model.h"

namespace graft {

const Schema& recipe_schema() {
  static const Schema schema = {
      KeySpec("description", "", "what this recipe is for"),
      KeySpec("plugins", std::vector<std::string>{}, "extra plugin libraries or directories, relative to the recipe"),
      KeySpec("seed", 0, "seed of every random draw of the run"),
      KeySpec::required_key("model", ValueType::section, "the network: backbone, weights, surgery, ..."),
      KeySpec("optimizer", ValueType::any, "~", "optimizer plugin with its keys and groups: rules"),
      KeySpec("scheduler", ValueType::any, "~", "learning-rate scheduler plugin with its keys and interval: epoch|step"),
      KeySpec("data", ValueType::section, "~", "dataset plugin, subsets, validation split, transforms, loader"),
      KeySpec("loss", ValueType::any, "~", "loss plugin (default cross_entropy)"),
      KeySpec("metrics", ValueType::section, "~", "metric plugins computed on every pass (default top-1, top-5)"),
      KeySpec("trainer", ValueType::section, "~", "epochs, max_steps, device, threads, amp, accumulation, clipping"),
      KeySpec("hooks", ValueType::section, "~", "trainer hook plugins"),
      KeySpec("checkpoint", ValueType::section, "~", "checkpoint strategy plugins (default [save_last, on_signal]; [] for none)"),
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
  for (const auto& op : surgery_ops(model)) {
    if (!op.with.is_null()) plan.plugins.push_back(resolve(registry, Kind::module, op.with));
  }
  const Config freeze = model["freeze"];
  if (!freeze.is_null() && !freeze.is_list()) freeze.fail("expected a list of freezing policies");
  for (const auto& f : freeze.items()) plan.plugins.push_back(resolve(registry, Kind::freezer, f));
  if (!root["optimizer"].is_null()) {
    const Config checked = registry.validated_spec(Kind::optimizer, root["optimizer"], {"groups"});
    const auto* plugin = registry.find(Kind::optimizer, Registry::spec_name(root["optimizer"]));
    plan.plugins.push_back(PluginUse{Kind::optimizer, plugin->entry.name, plugin->library, "optimizer", root["optimizer"].where()});
  }
  if (!root["scheduler"].is_null()) {
    const Config sc = root["scheduler"];
    registry.validated_spec(Kind::scheduler, sc, {"interval"});
    const auto* plugin = registry.find(Kind::scheduler, Registry::spec_name(sc));
    plan.plugins.push_back(PluginUse{Kind::scheduler, plugin->entry.name, plugin->library, "scheduler", sc.where()});
  }
  if (!root["data"].is_null()) {
    const Config data = root["data"].validated(data_schema(), "data");
    plan.plugins.push_back(resolve(registry, Kind::dataset, data["dataset"]));
    for (const char* key : {"transforms", "eval_transforms"}) {
      const Config list = data[key];
      if (list.is_null()) continue;
      if (std::string(key) == "eval_transforms" && list.is_scalar() && list.scalar() == "pretrained") {
        // torchvision's preprocessing for model.weights: checked where the data is opened
        if (!torchvision_meta(torchvision_model_of(root)))
          list.fail("pretrained: the evaluation preprocessing of torchvision's weights needs model.weights: torchvision:NAME");
        continue;
      }
      if (!list.is_list()) list.fail("expected a list of transform plugins, or pretrained (eval_transforms)");
      for (const auto& t : list.items()) plan.plugins.push_back(resolve(registry, Kind::transform, t));
    }
  }
  if (!root["trainer"].is_null()) root["trainer"].validated(trainer_schema(), "trainer");
  if (!root["loss"].is_null()) plan.plugins.push_back(resolve(registry, Kind::loss, root["loss"]));
  const std::pair<const char*, Kind> lists[] = {
      {"metrics", Kind::metric}, {"hooks", Kind::hook}, {"checkpoint", Kind::checkpoint}};
  for (const auto& [key, kind] : lists) {
    const Config list = root[key];
    if (list.is_null()) continue;
    if (!list.is_list()) list.fail(std::string("expected a list of ") + kind_name(kind) + " plugins");
    for (const auto& item : list.items()) plan.plugins.push_back(resolve(registry, kind, item));
  }
  return plan;
}

const Schema& trainer_schema() {
  static const Schema schema = {
      KeySpec("epochs", 10, "epochs to train").min(1),
      KeySpec("max_steps", 0, "stop after this many optimizer steps (0: no limit)").min(0),
      KeySpec("val_every", 1, "validate every N epochs (0: never)").min(0),
      KeySpec("log_every", 50, "a log line and a metrics.jsonl record every N optimizer steps").min(1),
      KeySpec("accumulate", 1, "batches whose gradients are summed before each optimizer step").min(1),
      KeySpec("clip_grad_norm", ValueType::number, "~", "clip the gradients' total 2-norm to this").greater_than(0),
      KeySpec("clip_grad_value", ValueType::number, "~", "clip every gradient element to [-v, v]").greater_than(0),
      KeySpec("device", ValueType::any, "auto", "cpu, cuda, cuda:N, auto, or a list of CUDA devices (DataParallel)"),
      KeySpec("threads", ValueType::any, "auto", "intra-op CPU threads: a number, or auto (= cores)"),
      KeySpec("amp", ValueType::string, "~", "mixed precision on CUDA: bf16 or fp16 (with loss scaling)").choices({"bf16", "fp16", "none"}),
      KeySpec("channels_last", false, "keep 4-D activations in channels-last memory format"),
      KeySpec("dist_backend", "auto", "multi-process runs: gloo (CPU), nccl (CUDA), or auto").choices({"auto", "gloo", "nccl"}),
      KeySpec("bucket_mb", 25.0, "multi-process runs: gradients are all-reduced in buckets of this size").min(0.001),
      KeySpec("test", true, "evaluate on the test split at the end and write the final report"),
      KeySpec("stop_on_nan", true, "stop with an error on a non-finite loss"),
      KeySpec("run_dir", "", "where the run writes, relative to the working directory (default runs/<recipe>-<date-time>; --run-dir wins)"),
  };
  return schema;
}

}  // namespace graft
