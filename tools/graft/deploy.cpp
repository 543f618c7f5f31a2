// graft export and graft predict: a trained model outside the training loop.
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <unistd.h>

#include <iostream>

#include "commands.h"
#include "graft/host/deploy.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "graft/host/runtime.h"
#include "graft/host/serialize.h"

using nlohmann::json;

namespace graft::cli {

bool is_recipe_path(const std::string& path) {
  const auto dot = path.rfind('.');
  const std::string ext = dot == std::string::npos ? "" : path.substr(dot);
  return ext == ".yaml" || ext == ".yml";
}

int cmd_export(const ExportArgs& args) {
  if (args.format == "state_dict") {
    if (!args.recipe.empty()) throw Error::usage("--recipe: only with --format torchscript");
    const StateDict weights = load_state_dict(args.checkpoint);
    save_state_dict(weights, args.out);
    std::cerr << "wrote " << args.out << ": " << weights.size() << " tensors (load with torch.load, weights_only=True)\n";
    return 0;
  }
  if (args.format != "torchscript") throw Error::usage("--format: expected state_dict or torchscript, got '" + args.format + "'");
  Registry registry;
  registry.scan(Registry::default_search_path());
  std::optional<Recipe> recipe;
  if (!args.recipe.empty()) {
    recipe = load_recipe(args.recipe, args.overrides);
    registry.scan(recipe->plugin_paths, Registry::Source::recipe);
  } else if (!args.overrides.empty()) {
    throw Error::usage("--set: only with --recipe");
  }
  TrainedModel model = load_trained(args.checkpoint, recipe ? &*recipe : nullptr, registry);
  export_torchscript(model, args.out);
  std::cerr << fmt::format("wrote {}: TorchScript of {} (input [N, {}], {} classes) with graft.json; "
                           "load with torch.jit.load or torch::jit::load\n",
                           args.out, model.info.backbone, fmt::join(model.info.input_shape, ", "), model.info.classes.size());
  return 0;
}

int cmd_predict(const PredictArgs& args) {
  if (args.topk < 1) throw Error::usage("--topk: must be at least 1");
  if (args.batch_size < 1) throw Error::usage("--batch-size: must be at least 1");
  Registry registry;
  registry.scan(Registry::default_search_path());
  std::vector<std::string> inputs = args.inputs;
  DeployInfo info;
  Predictor::Forward forward;
  std::string model_name;
  if (!args.checkpoint.empty()) {
    // graft predict [RECIPE] --checkpoint CKPT IMAGE...
    std::optional<Recipe> recipe;
    if (!inputs.empty() && is_recipe_path(inputs.front())) {
      recipe = load_recipe(inputs.front(), args.overrides);
      registry.scan(recipe->plugin_paths, Registry::Source::recipe);
      inputs.erase(inputs.begin());
    } else if (!args.overrides.empty()) {
      throw Error::usage("--set: only with a recipe");
    }
    auto model = std::make_shared<TrainedModel>(load_trained(args.checkpoint, recipe ? &*recipe : nullptr, registry));
    configure_cpu(resolve_threads(model->recipe.root["trainer"]["threads"]));
    info = model->info;
    model_name = args.checkpoint;
    if (args.eager) {
      forward = [model](const torch::Tensor& x) {
        torch::NoGradGuard no_grad;
        return model->built.module.forward(x);
      };
    } else {
      auto script = std::make_shared<ScriptModel>(ScriptModel::trace(model->built.module, info.input_shape));
      script->optimize();
      forward = [script](const torch::Tensor& x) { return script->forward(x); };
    }
  } else {
    // graft predict MODEL.pt IMAGE...
    if (inputs.empty()) throw Error::usage("predict: give a model (.pt, or a recipe with --checkpoint) and images");
    if (is_recipe_path(inputs.front())) throw Error::usage(inputs.front() + ": a recipe needs --checkpoint CKPT");
    model_name = inputs.front();
    auto script = std::make_shared<ScriptModel>(ScriptModel::load(inputs.front(), &info));
    inputs.erase(inputs.begin());
    configure_cpu(resolve_threads(Config()));
    if (!args.eager) script->optimize();
    forward = [script](const torch::Tensor& x) { return script->forward(x); };
  }
  if (inputs.empty()) throw Error::usage("predict: no images given");
  const auto files = image_files(inputs);

  PredictOptions options;
  options.topk = args.topk;
  options.batch_size = args.batch_size;
  options.keep_going = args.keep_going;
  const bool bar = args.progress == 1 || (args.progress == -1 && isatty(STDERR_FILENO) && files.size() > 1);
  if (bar)
    options.progress = [](std::int64_t done, std::int64_t all) {
      const int width = 30;
      const auto filled = static_cast<int>(width * done / std::max<std::int64_t>(all, 1));
      std::cerr << fmt::format("\rpredict [{}{}] {}/{} images", std::string(filled, '#'), std::string(width - filled, '.'),
                               done, all)
                << (done == all ? "\n" : "") << std::flush;
    };
  const Predictor predictor(info, registry, forward);
  const auto results = predictor.run(files, options);

  int failed = 0;
  for (const auto& p : results)
    if (!p.error.empty()) {
      ++failed;
      std::cerr << "error: " << p.error << "\n";
    }
  if (args.json) {
    json out = json::array();
    for (const auto& p : results) {
      json top = json::array();
      for (const auto& c : p.top) top.push_back({{"index", c.index}, {"class", c.name}, {"probability", c.probability}});
      out.push_back({{"file", p.file}, {"top", top}, {"error", p.error.empty() ? json(nullptr) : json(p.error)}});
    }
    std::cout << out.dump(2) << "\n";
  } else {
    for (const auto& p : results) {
      if (!p.error.empty()) continue;
      std::string line = p.file + ":";
      for (const auto& c : p.top) line += fmt::format(" {} {:.1f}%{}", c.name, 100 * c.probability, &c == &p.top.back() ? "" : ",");
      std::cout << line << "\n";
    }
  }
  if (failed) std::cerr << fmt::format("{} of {} images not predicted\n", failed, results.size());
  return failed ? 2 : 0;
}

}  // namespace graft::cli
