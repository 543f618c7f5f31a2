// Building the model a recipe describes: backbone -> weights -> input-channel adaptation
// -> head reset -> surgery. Each step records what it changed, and every parameter where
// its values come from (loaded, adapted, new).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <functional>
#include <set>

#include "graft/glob.h"
#include "graft/init.h"
#include "graft/host/build.h"
#include "graft/host/modules.h"
#include "graft/host/recipe.h"
#include "graft/host/surgery.h"
#include "graft/host/watch.h"
#include "graft/host/weights.h"

namespace nn = torch::nn;

namespace graft {

namespace {

const Schema& surgery_schema() {
  static const Schema schema = {
      KeySpec("replace", ValueType::string, "~", "path of the module to replace"),
      KeySpec("insert_after", ValueType::string, "~", "path of the stage to insert after"),
      KeySpec("insert_before", ValueType::string, "~", "path of the stage to insert before"),
      KeySpec("append_to", ValueType::string, "~", "path of the Stages container to append to"),
      KeySpec("remove", ValueType::string, "~", "path of the stage to remove"),
      KeySpec("name", ValueType::string, "~", "name of the new stage (insert_*, append_to)"),
      KeySpec("with", ValueType::any, "~", "the new module: a module plugin name or map"),
  };
  return schema;
}

// Tensors by identity. It holds them, so a replaced module's tensor cannot be freed and
// its address reused by a new one while origins are still being worked out.
struct TensorSet {
  std::vector<torch::Tensor> held;
  std::set<const void*> ids;
  void insert(const torch::Tensor& t) {
    if (ids.insert(t.unsafeGetTensorImpl()).second) held.push_back(t);
  }
  std::size_t count(const void* id) const { return ids.count(id); }
};

TensorSet tensors_named(const nn::Module& m, const std::vector<std::string>& names) {
  TensorSet out;
  const StateDict sd = state_dict(m);
  for (const auto& n : names)
    if (const auto* t = sd.find(n)) out.insert(*t);
  return out;
}

// A Conv2d with `old`'s settings but other channel counts.
nn::Conv2d conv_like(const nn::Conv2dImpl& old, std::int64_t in, std::int64_t out) {
  const auto& o = old.options;
  nn::Conv2dOptions options(in, out, o.kernel_size());
  options.stride(o.stride()).padding(o.padding()).dilation(o.dilation()).groups(o.groups()).bias(o.bias()).padding_mode(o.padding_mode());
  return nn::Conv2d(options);
}

std::string shape_str(const std::vector<std::int64_t>& s) { return "[" + fmt::format("{}", fmt::join(s, ", ")) + "]"; }

void walk(nn::Module& m, const std::string& path, const std::function<void(const std::string&, nn::Module&)>& f) {
  f(path, m);
  for (const auto& c : m.named_children()) walk(*c.value(), path.empty() ? c.key() : path + "." + c.key(), f);
}

// `model.init`: rules choosing modules by type and/or path glob, then an initializer per
// parameter name. By default only tensors that were not loaded are touched.
void apply_init_rules(const Config& model, const Registry& registry, nn::Module& root, BuiltModel& built) {
  const Config rules = model["init"];
  if (rules.is_null()) return;
  if (!rules.is_list()) rules.fail("expected a list of rules (- modules: Conv2d, weight: kaiming_normal, bias: zeros)");
  torch::NoGradGuard no_grad;
  for (const auto& rule : rules.items()) {
    if (!rule.is_map()) rule.fail("expected a map: modules:/names:, only:, then parameter: initializer");
    auto strings = [&](const std::string& key) {
      std::vector<std::string> out;
      const Config v = rule[key];
      if (v.is_null()) return out;
      if (v.is_scalar()) out.push_back(v.as<std::string>());
      else out = v.as<std::vector<std::string>>();
      return out;
    };
    const auto types = strings("modules");
    const auto names = strings("names");
    if (types.empty() && names.empty()) rule.fail("selects no modules: give modules: (types such as Conv2d) and/or names: (path globs)");
    const std::string only = rule.has("only") ? rule.get<std::string>("only") : "new";
    if (only != "new" && only != "all") rule["only"].fail("must be 'new' (not loaded from weights) or 'all', got '" + only + "'");

    std::vector<std::pair<std::string, InitFn>> inits;
    for (const auto& key : rule.keys()) {
      if (key == "modules" || key == "names" || key == "only") continue;
      inits.emplace_back(key, registry.create<Kind::initializer>(rule[key]));
    }
    if (inits.empty()) rule.fail("names no parameter to initialise (weight: ..., bias: ...)");

    std::size_t matched_modules = 0, filled = 0, skipped_loaded = 0;
    std::set<std::string> seen_params;
    walk(root, "", [&](const std::string& path, nn::Module& m) {
      if (!types.empty() && std::find(types.begin(), types.end(), type_name(m)) == types.end()) return;
      if (!names.empty() && std::none_of(names.begin(), names.end(), [&](const std::string& g) { return glob_match(g, path); })) return;
      ++matched_modules;
      auto tensors = m.named_parameters(false);
      for (const auto& b : m.named_buffers(false)) tensors.insert(b.key(), b.value());
      for (auto& [param, fn] : inits) {
        auto* t = tensors.find(param);
        if (!t) continue;
        seen_params.insert(param);
        const std::string full = path.empty() ? param : path + "." + param;
        if (only == "new" && built.origin[full] != "new") {
          ++skipped_loaded;
          continue;
        }
        try {
          fn(*t);
        } catch (const Error& e) {
          rule[param].fail(full + ": " + e.message());
        }
        built.origin[full] = "initialised";
        ++filled;
      }
    });
    const std::string what = (types.empty() ? "" : fmt::format("{}", fmt::join(types, "/"))) +
                             (names.empty() ? "" : (types.empty() ? "" : " ") + fmt::format("named {}", fmt::join(names, ", ")));
    if (matched_modules == 0) rule.fail("selects nothing: the model has no " + what + " module");
    for (const auto& [param, fn] : inits) {
      // `bias` may be absent everywhere (convs before BatchNorm): Python's `if m.bias is not None`.
      if (!seen_params.count(param) && param != "bias") rule[param].fail("no selected " + what + " module has a parameter '" + param + "'");
    }
    if (filled == 0)
      rule.fail(fmt::format("selects nothing new: all {} {} tensors were loaded from the weights (only: new); "
                            "add only: all to re-initialise them", skipped_loaded, what));
    built.changes.push_back(fmt::format("init: {} tensors of {} {} modules initialised ({})", filled, matched_modules, what,
                                        only == "new" ? "only new" : "all"));
  }
}

}  // namespace

const Schema& model_schema() {
  static const Schema schema = {
      KeySpec::required_key("backbone", ValueType::any, "backbone plugin: a name, or a map with name: and its keys"),
      KeySpec("weights", ValueType::any, "~",
              "pretrained weights: a .pth path, torchvision:NAME, an http(s) URL, or a map with from: and key mapping"),
      KeySpec("num_classes", ValueType::integer, "~", "replace the head (after loading weights) for this many classes").min(1),
      KeySpec("in_channels", ValueType::integer, "~", "adapt the first conv (after loading weights) to this many inputs").min(1),
      KeySpec("input_shape", ValueType::int_list, "~", "one sample's shape [C, H, W] for dry runs (default [C, 224, 224])"),
      KeySpec("surgery", ValueType::section, "~", "edits of the model tree by dotted path, in order"),
      KeySpec("init", ValueType::section, "~", "initialisation rules: modules:/names:, only: new|all, param: initializer"),
      KeySpec("freeze", ValueType::section, "~", "freezing policies (freezer plugins), applied together"),
  };
  return schema;
}

std::vector<SurgeryOp> surgery_ops(const Config& model) {
  std::vector<SurgeryOp> ops;
  const Config list = model["surgery"];
  if (list.is_null()) return ops;
  if (!list.is_list()) list.fail("expected a list of edits (- replace: PATH ..., - remove: PATH, ...)");
  for (const auto& item : list.items()) {
    const Config c = item.validated(surgery_schema(), "a surgery step");
    SurgeryOp op;
    op.node = item;
    for (const char* k : {"replace", "insert_after", "insert_before", "append_to", "remove"}) {
      if (!c.has(k)) continue;
      if (!op.op.empty()) item.fail("has both '" + op.op + "' and '" + k + "'; one operation per step");
      op.op = k;
      op.path = c.get<std::string>(k);
    }
    if (op.op.empty()) item.fail("names no operation (replace, insert_after, insert_before, append_to or remove)");
    const bool adds = op.op == "insert_after" || op.op == "insert_before" || op.op == "append_to";
    if (adds && !c.has("name")) item.fail("'" + op.op + "' needs a name: for the new stage");
    if (adds) op.name = c.get<std::string>("name");
    if (!adds && c.has("name")) c["name"].fail("only insert_after, insert_before and append_to take a name");
    if (op.op == "remove" && c.has("with")) c["with"].fail("remove takes no module");
    if (op.op != "remove" && !c.has("with")) item.fail("'" + op.op + "' needs with: (the new module)");
    op.with = c["with"];
    ops.push_back(std::move(op));
  }
  return ops;
}

BuiltModel build_model(const Recipe& recipe, const Registry& registry) {
  const Config model = recipe.root["model"].validated(model_schema(), "model");
  BuiltModel built;
  // Every random draw of the build (fresh layers, init rules) follows the recipe's seed.
  torch::manual_seed(static_cast<std::uint64_t>(recipe.root.get<std::int64_t>("seed", 0)));
  {
    // a backbone made of module plugins (`branches`, `stages`) sizes them from model.input_shape
    std::vector<std::int64_t> incoming;
    if (!model["input_shape"].is_null()) {
      incoming = model.get<std::vector<std::int64_t>>("input_shape");
      incoming.insert(incoming.begin(), 2);
    }
    ModuleScope scope(registry, incoming);
    built.module = registry.create<Kind::backbone>(model["backbone"]);
  }
  built.backbone = Registry::spec_name(model["backbone"]);
  nn::Module& root = *built.module.ptr();

  TensorSet loaded, adapted;
  if (!model["weights"].is_null()) {
    const WeightsSpec spec = parse_weights_spec(model["weights"]);
    std::string path;
    try {
      path = resolve_weights(spec.source);
    } catch (const Error& e) {
      throw Error(e.kind(), e.message(), model["weights"].where());
    }
    const StateDict file = map_keys(load_state_dict(path), spec.mapping);
    built.weights = load_weights(root, file, spec.strict, path);
    loaded = tensors_named(root, built.weights->loaded);
  }

  const auto param_modules = parameter_modules(root);
  if (!model["in_channels"].is_null()) {
    const auto n = model.get<std::int64_t>("in_channels");  // >= 1 (model_schema)
    std::string first;
    bool found = false;
    for (const auto& p : param_modules)
      if (module_ref(root, p).as<nn::Conv2d>()) { first = p; found = true; break; }
    if (!found) model["in_channels"].fail("the model has no Conv2d to adapt");
    if (first.empty()) model["in_channels"].fail("the model is a single Conv2d; nothing to adapt it inside");
    const auto old_module = module_at(root, first);  // keeps it alive through the replacement
    auto* old = old_module->as<nn::Conv2d>();
    if (old->options.in_channels() != n) {
      nn::Conv2d conv = conv_like(*old, n, old->options.out_channels());
      const bool was_loaded = loaded.count(old->weight.unsafeGetTensorImpl()) > 0;
      {
        torch::NoGradGuard no_grad;
        if (was_loaded) conv->weight.copy_(adapt_input_conv(n, old->weight));
        if (old->bias.defined() && conv->bias.defined()) conv->bias.copy_(old->bias);
      }
      if (was_loaded) {
        adapted.insert(conv->weight);
        if (conv->bias.defined() && loaded.count(old->bias.unsafeGetTensorImpl())) loaded.insert(conv->bias);
      }
      try {
        replace_at(root, first, nn::AnyModule(conv));
      } catch (const Error& e) {
        model["in_channels"].fail(e.message());
      }
      built.changes.push_back(fmt::format("in_channels: {} adapted from {} to {} input channels{}", first,
                                          old->options.in_channels(), n,
                                          was_loaded ? (n == 1 ? " (pretrained weight summed over RGB)"
                                                               : " (pretrained weight repeated, scaled by 3/" + std::to_string(n) + ")")
                                                     : " (new weights)"));
    }
  }

  if (!model["num_classes"].is_null()) {
    const auto n = model.get<std::int64_t>("num_classes");  // >= 1 (model_schema)
    if (param_modules.empty()) model["num_classes"].fail("the model has no layer with parameters");
    const std::string head = param_modules.back();
    if (head.empty()) model["num_classes"].fail("the model is a single layer; replace it with surgery instead");
    auto m = module_at(root, head);
    nn::AnyModule fresh;
    std::int64_t before = 0;
    bool head_loaded = false;
    if (auto lin = m->as<nn::Linear>()) {
      before = lin->options.out_features();
      head_loaded = loaded.count(lin->weight.unsafeGetTensorImpl()) > 0;
      fresh = nn::AnyModule(nn::Linear(nn::LinearOptions(lin->options.in_features(), n).bias(lin->options.bias())));
    } else if (auto conv = m->as<nn::Conv2d>()) {
      before = conv->options.out_channels();
      head_loaded = loaded.count(conv->weight.unsafeGetTensorImpl()) > 0;
      fresh = nn::AnyModule(conv_like(*conv, conv->options.in_channels(), n));
    } else {
      model["num_classes"].fail("the last layer with parameters, '" + head + "', is a " + type_name(*m) +
                                ", not a Linear or Conv2d head; replace it with surgery instead");
    }
    if (before != n) {
      try {
        replace_at(root, head, fresh);
      } catch (const Error& e) {
        model["num_classes"].fail(e.message());
      }
      built.changes.push_back(fmt::format("num_classes: head {} reset from {} to {} outputs{}", head, before, n,
                                          head_loaded ? " (the pretrained head is dropped)" : ""));
    }
  }

  // One sample's shape, for dry runs: [C, 224, 224] by default.
  if (!model["input_shape"].is_null()) {
    built.input_shape = model.get<std::vector<std::int64_t>>("input_shape");
  } else {
    std::int64_t channels = 3;
    for (const auto& p : parameter_modules(root)) {
      if (auto* conv = module_ref(root, p).as<nn::Conv2d>()) {
        channels = conv->options.in_channels();
        break;
      }
    }
    // A backbone with an `input_size` key (the small nets) says its own; else ImageNet's.
    std::int64_t size = 224;
    const Config backbone = registry.validated_spec(Kind::backbone, model["backbone"]);
    const auto& keys = registry.find(Kind::backbone, built.backbone)->entry.keys;
    if (std::any_of(keys.begin(), keys.end(), [](const KeySpec& k) { return k.name == "input_size"; }))
      size = backbone.get<std::int64_t>("input_size");
    built.input_shape = {channels, size, size};
  }

  // What flows into a module is found by one watched forward of a sample of that shape.
  std::vector<std::int64_t> example_shape{2};
  example_shape.insert(example_shape.end(), built.input_shape.begin(), built.input_shape.end());
  const auto example = torch::zeros(example_shape);
  for (const auto& op : surgery_ops(model)) {
    const Config at = op.node[op.op];
    try {
      if (op.op == "remove") {
        remove_at(root, op.path);
        built.changes.push_back("surgery: removed " + op.path);
        continue;
      }
      // an identity first takes the new module's place, to see what flows in there (the
      // model may not run past it: a replaced first layer that took other channels)
      std::string path = op.path;
      std::optional<std::vector<std::int64_t>> fallback;  // a replaced layer that does not run here (an aux head)
      if (op.op == "replace") {
        const auto target = module_at(root, op.path);
        if (auto lin = target->as<nn::Linear>()) fallback = std::vector<std::int64_t>{2, lin->options.in_features()};
        else if (auto conv = target->as<nn::Conv2d>()) fallback = std::vector<std::int64_t>{2, conv->options.in_channels(), 1, 1};
        replace_at(root, op.path, nn::AnyModule(nn::Identity()));
      } else if (op.op == "append_to") {
        append_to(root, op.path, op.name, nn::AnyModule(nn::Identity()));
        path = op.path.empty() ? op.name : op.path + "." + op.name;
      } else {
        insert_next_to(root, op.path, op.op == "insert_after", op.name, nn::AnyModule(nn::Identity()));
        const auto dot = op.path.rfind('.');
        path = dot == std::string::npos ? op.name : op.path.substr(0, dot + 1) + op.name;
      }
      auto shape = shape_at(built.module, path, example, false);
      if (!shape) shape = fallback;
      auto placed = build_module_at(registry, op.with, shape.value_or(std::vector<std::int64_t>{}), /*probe=*/false);
      replace_at(root, path, placed.module);
      const std::string plugin = Registry::spec_name(op.with);
      if (op.op == "replace") {
        built.changes.push_back("surgery: replaced " + op.path + " with " + plugin +
                                (shape ? " (input " + shape_str(*shape) + ")" : ""));
      } else {
        built.changes.push_back("surgery: " + plugin + " '" + op.name + "' " +
                                (op.op == "append_to" ? "appended to " : op.op == "insert_after" ? "inserted after " : "inserted before ") +
                                op.path);
      }
    } catch (const Error& e) {
      if (e.where().known()) throw;
      at.fail(e.message());
    }
  }

  for (const auto& item : state_dict(root)) {
    const void* impl = item.value().unsafeGetTensorImpl();
    built.origin[item.key()] = adapted.count(impl) ? "adapted" : loaded.count(impl) ? "loaded" : "new";
  }
  apply_init_rules(model, registry, root, built);
  return built;
}

}  // namespace graft
