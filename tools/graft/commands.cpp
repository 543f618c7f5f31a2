#include "commands.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "graft/model.h"
#include "graft/host/build.h"
#include "graft/host/check.h"
#include "graft/host/dist.h"
#include "graft/host/logging.h"
#include "graft/host/optimizer_plan.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "graft/host/serialize.h"
#include "graft/state.h"
#include "graft/host/summary.h"
#include "graft/host/trainer.h"
#include "graft/host/runtime.h"
#include "graft/version.h"
#include "graft/host/weights.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace graft::cli {

namespace {

std::string file_name(const std::string& path) { return fs::path(path).filename().string(); }

std::string millions(std::int64_t n) { return fmt::format("{:.2f}M", static_cast<double>(n) / 1e6); }

// 1234567 -> "1,234,567"
std::string grouped(std::int64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > (n < 0 ? 1 : 0); i -= 3) s.insert(static_cast<std::size_t>(i), ",");
  return s;
}

// An optimizer setting as `graft check` shows it (shortest text that reads back the same
// number: 0.9, not 0.90000000000000002); nullopt for what is not a setting (tensors, none).
std::optional<std::string> state_value_text(const State::Value& v) {
  return std::visit(
      [](const auto& x) -> std::optional<std::string> {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate> || std::is_same_v<T, torch::Tensor>) return std::nullopt;
        else if constexpr (std::is_same_v<T, std::vector<std::int64_t>> || std::is_same_v<T, std::vector<double>> ||
                           std::is_same_v<T, std::vector<std::string>>)
          return fmt::format("[{}]", fmt::join(x, ", "));
        else return fmt::format("{}", x);
      },
      v);
}

json state_value_json(const State::Value& v) {
  return std::visit(
      [](const auto& x) -> json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate> || std::is_same_v<T, torch::Tensor>) return nullptr;
        else return json(x);
      },
      v);
}

// Loads the recipe and every plugin library it can use: built-in, GRAFT_PLUGIN_PATH, and
// the recipe's own `plugins:`.
struct Loaded {
  Recipe recipe;
  Registry registry;
};

std::unique_ptr<Loaded> load(const RecipeArgs& args) {
  auto l = std::make_unique<Loaded>();
  l->recipe = load_recipe(args.recipe, args.overrides);
  l->registry.scan(Registry::default_search_path());
  l->registry.scan(l->recipe.plugin_paths, Registry::Source::recipe);
  return l;
}

// The process-wide CPU settings for training and evaluating, with the recipe's
// trainer.threads: the library leaves them to the program.
void configure_cpu_for(const Recipe& recipe) { configure_cpu(resolve_threads(recipe.root["trainer"]["threads"])); }

json report_json(const std::optional<LoadReport>& r) {
  if (!r) return nullptr;
  json mismatched = json::array();
  for (const auto& m : r->mismatched)
    mismatched.push_back({{"key", m.key}, {"model_shape", m.model_shape}, {"file_shape", m.file_shape}});
  json renamed = json::array();
  for (const auto& [from, to] : r->renamed) renamed.push_back({{"from", from}, {"to", to}});
  return {{"file", r->file},           {"loaded", r->loaded.size()},   {"missing", r->missing},
          {"unexpected", r->unexpected}, {"mismatched", mismatched}, {"defaulted", r->defaulted},
          {"renamed", renamed}};
}

json key_json(const KeySpec& k) {
  json j = {{"name", k.name}, {"type", value_type_name(k.type)}, {"required", k.required}, {"doc", k.doc}};
  j["default"] = k.required ? json(nullptr) : json(k.default_yaml);
  json c = json::object();
  if (k.lower) c["min"] = {{"value", k.lower->value}, {"exclusive", k.lower->exclusive}};
  if (k.upper) c["max"] = {{"value", k.upper->value}, {"exclusive", k.upper->exclusive}};
  if (!k.allowed.empty()) c["choices"] = k.allowed;
  if (k.nonempty) c["non_empty"] = true;
  if (k.items) c["length"] = *k.items;
  if (k.constrained()) c["text"] = k.constraint_text();
  j["constraints"] = c;
  return j;
}

}  // namespace

int cmd_plugins(const std::string& kind_filter, bool as_json) {
  Kind kind{};
  if (!kind_filter.empty() && !parse_kind(kind_filter, kind)) {
    std::vector<std::string> names;
    for (Kind k : all_kinds()) names.push_back(kind_name(k));
    const std::string guess = closest_match(kind_filter, names);
    throw Error::usage("unknown plugin kind '" + kind_filter + "'" +
                       (guess.empty() ? "" : " (did you mean '" + guess + "'?)") + "; kinds: " +
                       fmt::format("{}", fmt::join(names, ", ")));
  }
  Registry registry;
  registry.scan(Registry::default_search_path());
  const auto plugins = kind_filter.empty() ? registry.list() : registry.list(kind);

  if (as_json) {
    json out = json::array();
    for (const auto* p : plugins) {
      json keys = json::array();
      for (const auto& k : p->entry.keys) keys.push_back(key_json(k));
      out.push_back({{"kind", kind_name(p->entry.kind)},
                     {"name", p->entry.name},
                     {"library", p->library},
                     {"doc", p->entry.doc},
                     {"keys", keys}});
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::string current;
  for (const auto* p : plugins) {
    if (current != kind_name(p->entry.kind)) {
      current = kind_name(p->entry.kind);
      std::cout << (p == plugins.front() ? "" : "\n") << current << "\n";
    }
    std::cout << fmt::format("  {:<20} {}  [{}]\n", p->entry.name, p->entry.doc, file_name(p->library));
    // Constraints get a column of their own where a plugin has any.
    std::size_t width = 0;
    for (const auto& k : p->entry.keys) width = std::max(width, k.constraint_text().size());
    for (const auto& k : p->entry.keys) {
      const std::string def = k.required ? "required" : "= " + k.default_yaml;
      const std::string constraint = width ? fmt::format("{:<{}}  ", k.constraint_text(), width) : "";
      std::cout << fmt::format("      {:<18} {:<12} {:<14} {}{}\n", k.name, value_type_name(k.type), def, constraint,
                               k.doc);
    }
  }
  if (plugins.empty()) std::cout << "no plugins installed" << (kind_filter.empty() ? "" : " of kind " + kind_filter) << "\n";
  return 0;
}

int cmd_check(const RecipeArgs& args) {
  auto l = load(args);
  const Plan plan = check_recipe(l->recipe, l->registry);
  const DryRun dry = dry_run(l->recipe, l->registry);
  BuiltModel built = build_model(l->recipe, l->registry);
  auto& model = *built.module.ptr();
  const FreezeState frozen = freeze_state(make_freezers(l->recipe, l->registry), model_info(model), 0, 0);
  apply_freeze(model, frozen);
  std::optional<OptimizerPlan> optimizer_plan;
  json groups = json::array();
  std::string groups_text;
  if (!l->recipe.root["optimizer"].is_null()) {
    optimizer_plan = plan_optimizer(l->recipe, l->registry, model, frozen);
    const auto optimizer = make_optimizer(l->recipe, l->registry, *optimizer_plan);
    // report what the optimizer really holds, group by group, with all its settings
    for (std::size_t k = 0; k < optimizer->group_count(); ++k) {
      const auto& params = optimizer->params(k);
      std::int64_t n = 0;
      for (const auto& t : params) n += t.numel();
      const auto& planned = optimizer_plan->groups[k];
      json settings = json::object();
      std::string text;
      const State options = optimizer->group_options(k);
      for (const auto& [key, value] : options.items()) {
        const auto shown = state_value_text(value);
        if (!shown) continue;  // tensors, none: not settings
        settings[key] = state_value_json(value);
        text += fmt::format(" {} {}", key, *shown);
      }
      groups.push_back({{"name", planned.name}, {"tensors", params.size()}, {"params", n}, {"options", settings}});
      groups_text += fmt::format("group       {:<16} {:>4} tensors {:>12} params {}\n", planned.name, params.size(), grouped(n), text);
    }
  }
  std::map<std::string, std::int64_t> origins;
  for (const auto& p : model.named_parameters()) origins[built.origin[p.key()]] += 1;
  // what torchvision publishes with the weights: preprocessing and class names
  const auto tv = torchvision_model_of(l->recipe.root);
  const auto meta = tv.empty() ? std::nullopt : torchvision_meta(tv);
  const ParamCount count = count_parameters(model);

  if (args.json) {
    json plugins = json::array();
    for (const auto& u : plan.plugins)
      plugins.push_back({{"kind", kind_name(u.kind)}, {"name", u.name}, {"library", u.library}, {"key", u.path},
                         {"where", u.where.str()}});
    json out = {{"ok", true},
                {"recipe", args.recipe},
                {"sources", l->recipe.sources},
                {"seed", plan.seed},
                {"plugins", plugins},
                {"weights", report_json(built.weights)},
                {"pretrained", meta ? json{{"model", tv}, {"resize", meta->resize}, {"crop", meta->crop},
                                           {"mean", meta->mean}, {"std", meta->std},
                                           {"classes", imagenet_categories().size()}}
                                    : json(nullptr)},
                {"changes", built.changes},
                {"origins", origins},
                {"frozen", frozen.frozen},
                {"eval_modules", frozen.eval_modules},
                {"optimizer", optimizer_plan ? json(optimizer_plan->optimizer) : json(nullptr)},
                {"groups", groups},
                {"parameters", {{"total", count.total}, {"trainable", count.trainable}}},
                {"dry_run", {{"input_shape", dry.input_shape}, {"output_shape", dry.output_shape}, {"classes", dry.classes},
                             {"loss", dry.classes ? json(dry.loss) : json(nullptr)}, {"stepped", dry.stepped},
                             {"state_bytes", dry.state_bytes}, {"warnings", dry.warnings}, {"seconds", dry.seconds}}}};
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << "recipe      " << args.recipe << "\n";
  for (std::size_t i = 1; i < l->recipe.sources.size(); ++i) std::cout << "  base      " << l->recipe.sources[i] << "\n";
  for (const auto& u : plan.plugins)
    std::cout << fmt::format("{:<11} {:<16} {:<20} [{}]\n", kind_name(u.kind), u.name, u.path, file_name(u.library));
  if (built.weights) std::cout << built.weights->table();
  if (meta)
    std::cout << fmt::format("pretrained  torchvision:{}: {}; {} ImageNet classes (eval_transforms: pretrained)\n", tv,
                             meta->describe(), imagenet_categories().size());
  for (const auto& change : built.changes) std::cout << "change      " << change << "\n";
  std::string origin_text;
  for (const auto& [origin, n] : origins) origin_text += fmt::format("{}{} {}", origin_text.empty() ? "" : ", ", n, origin);
  std::cout << "tensors     " << origin_text << (frozen.frozen.empty() ? "" : fmt::format("; {} frozen", frozen.frozen.size()))
            << (frozen.eval_modules.empty() ? "" : fmt::format("; {} BatchNorm kept in eval mode", frozen.eval_modules.size()))
            << "\n";
  if (optimizer_plan) std::cout << "optimizer   " << optimizer_plan->optimizer << "\n" << groups_text;
  std::cout << fmt::format("parameters  {} ({}), trainable {} ({})\n", grouped(count.total), millions(count.total),
                           grouped(count.trainable), millions(count.trainable));
  if (dry.input_shape.empty()) {
    std::cout << "dry run     none: no data: section (every plugin built)\n";
  } else {
    std::cout << fmt::format("dry run     a batch of [{}] gave [{}] for {} classes, loss {:.4f}", fmt::join(dry.input_shape, ", "),
                             fmt::join(dry.output_shape, ", "), dry.classes, dry.loss);
    if (dry.stepped)
      std::cout << fmt::format("; one optimizer step; checkpoint {:.1f} MB in memory", static_cast<double>(dry.state_bytes) / 1e6);
    std::cout << fmt::format(" ({:.2f} s)\n", dry.seconds);
  }
  std::cout << "ok\n";
  return 0;
}

int cmd_train(const RecipeArgs& args) {
  // one rank of a multi-process run (graft launch, torchrun): its lines say which; the
  // ranks other than 0 log warnings and errors only
  const auto env = dist::Env::from_environment();
  const bool many = env && env->distributed();
  if (many) {
    log_prefix(fmt::format("[rank {}] ", env->rank));
    if (env->rank != 0) log_to_stderr(log::Level::warn);
  }
  auto l = load(args);
  TrainOptions options;
  options.run_dir = args.run_dir;
  if (args.progress >= 0) options.progress = args.progress == 1;
  if (many && env->rank != 0) options.progress = false;
  options.resume = args.resume;
  options.resume_weights_only = args.resume_weights_only;
  options.dist = env;
  const Config threads = l->recipe.root["trainer"]["threads"];
  if (many && (threads.is_null() || (threads.is_scalar() && threads.as<std::string>() == "auto")))
    configure_cpu(std::max(1, resolve_threads(threads) / env->local_world));  // the node's cores, shared
  else
    configure_cpu_for(l->recipe);
  FitResult r;
  try {
    r = fit(l->recipe, l->registry, options);
  } catch (const Error& e) {
    // a rank's last line says which rank it is (the group's own errors already do)
    const std::string tag = fmt::format("rank {}/", env ? env->rank : 0);
    if (!many || e.message().rfind(tag, 0) == 0) throw;
    throw Error(e.kind(), fmt::format("[rank {}] {}", env->rank, e.message()), e.where());
  }
  if (args.json) {
    json out = {{"run_dir", r.run_dir},         {"epochs", r.epochs},   {"steps", r.steps},
                {"stop_reason", r.stop_reason}, {"seconds", r.seconds}, {"metrics", r.metrics},
                {"checkpoint", r.checkpoint},   {"resumed_from", r.resumed_from}, {"exit_code", r.exit_code}};
    std::cout << out.dump(2) << "\n";
  }
  return r.exit_code;
}

int cmd_eval(const RecipeArgs& args) {
  auto l = load(args);
  configure_cpu_for(l->recipe);
  EvalOptions options;
  if (!args.split.empty()) options.split = args.split;
  options.eager = args.eager;
  const PassResult r = evaluate(l->recipe, l->registry, args.checkpoint, options);
  auto metric = [&](const char* k) { return r.metrics.count(k) ? json(r.metrics.at(k)) : json(nullptr); };
  if (args.json) {
    json out = {{"loss", metric("loss")}, {"top1", metric("top1")}, {"top5", metric("top5")}, {"samples", r.samples},
                {"split", r.split},       {"metrics", r.metrics}};
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << fmt::format("{} split, {} samples: loss {:.4f}", r.split, r.samples, r.metrics.at("loss"));
  for (const char* k : {"top1", "top5"})
    if (r.metrics.count(k)) std::cout << fmt::format(", {} {:.2f}%", k, 100 * r.metrics.at(k));
  std::cout << "\n";
  if (!r.report.empty()) std::cout << "\n" << r.report;
  return 0;
}

int cmd_inspect(const RecipeArgs& args) {
  auto l = load(args);
  check_recipe(l->recipe, l->registry);
  BuiltModel built = build_model(l->recipe, l->registry);
  auto& model = built.module;
  const std::string& name = built.backbone;
  const std::string tree = describe_tree(*model.ptr(), name);
  const ParamCount count = count_parameters(*model.ptr());
  const auto input = args.input_shape.empty() ? built.input_shape : args.input_shape;
  std::vector<SummaryRow> rows;
  if (args.summary) rows = summarize(model, input, built.origin);
  if (!args.dot_file.empty()) {
    std::ofstream dot(args.dot_file);
    dot << to_dot(model, name);
    if (!dot) throw Error::usage("--dot: cannot write " + args.dot_file);
  }
  if (args.json) {
    json params = json::array();
    for (const auto& p : model.ptr()->named_parameters())
      params.push_back({{"name", p.key()},
                        {"shape", p.value().sizes().vec()},
                        {"trainable", p.value().requires_grad()},
                        {"origin", built.origin.count(p.key()) ? built.origin.at(p.key()) : ""}});
    json out = {{"backbone", name},
                {"tree", tree},
                {"weights", report_json(built.weights)},
                {"changes", built.changes},
                {"parameters", params},
                {"total", count.total},
                {"trainable", count.trainable},
                {"input_shape", input}};
    if (args.summary) {
      json table = json::array();
      for (const auto& r : rows)
        table.push_back({{"path", r.path}, {"type", r.type}, {"depth", r.depth}, {"output_shape", r.output_shape},
                         {"params", r.params}, {"trainable", r.trainable}, {"origin", r.origin}});
      out["summary"] = table;
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  if (args.summary) {
    std::cout << fmt::format("{:<44} {:<18} {:<20} {:>12} {:>12}  {}\n", "Layer (path)", "Type", "Output shape",
                             "Param #", "Trainable", "Origin");
    std::cout << std::string(118, '=') << "\n";
    for (const auto& r : rows) {
      const std::string shape = r.output_shape.empty() ? "" : fmt::format("[{}]", fmt::join(r.output_shape, ", "));
      std::cout << fmt::format("{:<44} {:<18} {:<20} {:>12} {:>12}  {}\n", std::string(2 * r.depth, ' ') + r.path, r.type,
                               shape, grouped(r.params), grouped(r.trainable), r.origin);
    }
    std::cout << std::string(118, '=') << "\n";
    std::cout << fmt::format("Input shape: [1, {}]\n", fmt::join(input, ", "));
  } else {
    std::cout << tree << "\n";
  }
  if (built.weights) std::cout << built.weights->table();
  for (const auto& change : built.changes) std::cout << change << "\n";
  std::cout << fmt::format("Total params: {} ({})\nTrainable params: {} ({})\nNon-trainable params: {}\n",
                           grouped(count.total), millions(count.total), grouped(count.trainable),
                           millions(count.trainable), grouped(count.total - count.trainable));
  if (!args.dot_file.empty()) std::cerr << "wrote " << args.dot_file << "\n";
  return 0;
}

int cmd_convert(const ConvertArgs& args) {
  KeyMapping mapping;
  mapping.strip_prefix = args.strip_prefix;
  mapping.add_prefix = args.add_prefix;
  mapping.exclude = args.exclude;
  for (const auto& r : args.rename) {
    const auto eq = r.find('=');
    if (eq == std::string::npos || eq == 0) throw Error::usage("--rename " + r + ": expected REGEX=REPLACEMENT");
    mapping.rename.emplace_back(r.substr(0, eq), r.substr(eq + 1));
  }
  const StateDict weights = map_keys(load_state_dict(args.in), mapping);
  save_state_dict(weights, args.out);
  std::cerr << "wrote " << args.out << ": " << weights.size() << " tensors\n";
  return 0;
}

int cmd_version(bool as_json) {
  if (as_json) {
    std::cout << json{{"graft", GRAFT_VERSION}, {"abi", GRAFT_ABI_VERSION}, {"libtorch", TORCH_VERSION}}.dump() << "\n";
  } else {
    std::cout << "graft " << GRAFT_VERSION << " (plugin ABI " << GRAFT_ABI_VERSION << "), LibTorch " << TORCH_VERSION
              << "\n";
  }
  return 0;
}

}  // namespace graft::cli
