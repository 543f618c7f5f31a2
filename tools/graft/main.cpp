// graft: the command line. Thin over the framework; exit codes at this edge only:
// 0 success, 2 usage or recipe error, 1 anything else.
#include <CLI/CLI.hpp>
#include <torch/version.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "launch.h"
#include "graft/error.h"
#include "graft/host/logging.h"
#include "graft/version.h"

namespace {

/// --log-level: graft's lines at that level and above go to stderr as `level: text`.
/// graft logs nothing above error, so critical is as quiet as off.
void setup_logging(const std::string& level) {
  using graft::log::Level;
  if (level == "trace" || level == "debug") graft::log_to_stderr(Level::debug);
  else if (level == "info") graft::log_to_stderr(Level::info);
  else if (level == "warn") graft::log_to_stderr(Level::warn);
  else if (level == "error") graft::log_to_stderr(Level::error);
}

void add_recipe_args(CLI::App* cmd, graft::cli::RecipeArgs& args) {
  cmd->add_option("recipe", args.recipe, "recipe YAML file")->required();
  cmd->add_option("--set", args.overrides, "override a recipe key: KEY.PATH=VALUE (VALUE is YAML)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
  cmd->add_flag("--json", args.json, "print one JSON object on stdout");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"graft " GRAFT_VERSION ": transfer learning on LibTorch, from YAML recipes"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));

  std::string kind;
  bool json = false;
  auto* plugins = app.add_subcommand("plugins", "list installed plugins, with their docs and keys");
  plugins->add_option("kind", kind, "only this kind (backbone, module, initializer, ...)");
  plugins->add_flag("--json", json, "print a JSON list on stdout");

  graft::cli::RecipeArgs check_args, inspect_args;
  add_recipe_args(app.add_subcommand("check", "validate a recipe, resolve every plugin it names and dry-run its first training step"), check_args);
  auto* inspect = app.add_subcommand("inspect", "print the model a recipe builds");
  add_recipe_args(inspect, inspect_args);
  inspect->add_flag("--summary", inspect_args.summary, "a table: path, type, output shape, params, trainable, origin");
  inspect->add_option("--dot", inspect_args.dot_file, "write a Graphviz graph of the stages to FILE");
  inspect->add_option("--input-shape", inspect_args.input_shape, "one sample's shape, e.g. 3,224,224 (default: model.input_shape)")
      ->delimiter(',')
      ->expected(1, 4);

  graft::cli::RecipeArgs train_args, eval_args;
  auto* train = app.add_subcommand("train", "train the model a recipe describes; writes a run dir");
  add_recipe_args(train, train_args);
  train->add_option("--run-dir", train_args.run_dir, "where the run writes (default runs/<recipe>-<date-time>)");
  train->add_option("--resume", train_args.resume,
                    "go on with a run: auto (the newest good checkpoint of the run dir; none: a new run) or a checkpoint path");
  train->add_option("--resume-weights-only", train_args.resume_weights_only,
                    "start a NEW run whose model starts from this checkpoint's weights");
  train->add_option("--progress", train_args.progress, "progress bar: 1 always, 0 never (default: on a terminal)")
      ->check(CLI::IsMember({0, 1}));
  auto* evaluate = app.add_subcommand("eval", "evaluate a checkpoint on the recipe's test split");
  add_recipe_args(evaluate, eval_args);
  evaluate->add_option("--checkpoint", eval_args.checkpoint, "checkpoint or weights file (.pth)")->required();
  evaluate->add_option("--split", eval_args.split, "train, val or test (default test)");
  evaluate->add_flag("--eager", eval_args.eager, "run the model as trained, not traced and optimized for inference (CPU)");

  graft::cli::ExportArgs export_args;
  auto* exporter = app.add_subcommand("export", "write a checkpoint's model: a plain state dict (.pth) or TorchScript (.pt)");
  exporter->add_option("checkpoint", export_args.checkpoint, "checkpoint or weights file")->required();
  exporter->add_option("out", export_args.out, "output file")->required();
  exporter->add_option("--format", export_args.format,
                       "state_dict (the weights, for torch.load) or torchscript (the model, for torch.jit.load, with graft.json)")
      ->check(CLI::IsMember({"state_dict", "torchscript"}));
  exporter->add_option("--recipe", export_args.recipe, "build the model from this recipe (default: the checkpoint's own)");
  exporter->add_option("--set", export_args.overrides, "override a key of --recipe: KEY.PATH=VALUE")->allow_extra_args(false);

  graft::cli::PredictArgs predict_args;
  auto* predict = app.add_subcommand("predict", "classify images: top-k class names and probabilities");
  predict->add_option("inputs", predict_args.inputs, "MODEL.pt IMAGE|DIR..., or [RECIPE] --checkpoint CKPT IMAGE|DIR...")
      ->required();
  predict->add_option("--checkpoint", predict_args.checkpoint, "a checkpoint (its own recipe builds the model, or RECIPE's)");
  predict->add_option("--set", predict_args.overrides, "override a recipe key: KEY.PATH=VALUE")->allow_extra_args(false);
  predict->add_option("--topk", predict_args.topk, "classes shown per image (default 5)");
  predict->add_option("--batch-size", predict_args.batch_size, "images per forward pass (default 32)");
  predict->add_flag("--json", predict_args.json, "print a JSON list on stdout");
  predict->add_flag("--keep-going", predict_args.keep_going, "predict the other images when one fails (exit code 2 still)");
  predict->add_flag("--eager", predict_args.eager, "run the model unoptimized");
  predict->add_option("--progress", predict_args.progress, "progress bar: 1 always, 0 never (default: on a terminal)")
      ->check(CLI::IsMember({0, 1}));

  graft::cli::ConvertArgs convert_args;
  auto* convert = app.add_subcommand("convert", "rewrite a weights file's keys");
  convert->add_option("in", convert_args.in, "input .pth")->required();
  convert->add_option("out", convert_args.out, "output .pth")->required();
  convert->add_option("--strip-prefix", convert_args.strip_prefix, "remove this prefix where keys start with it");
  convert->add_option("--add-prefix", convert_args.add_prefix, "prepend this to every key");
  convert->add_option("--rename", convert_args.rename, "REGEX=REPLACEMENT, applied in order")->allow_extra_args(false);
  convert->add_option("--exclude", convert_args.exclude, "glob of keys to drop")->allow_extra_args(false);

  graft::cli::FeaturesArgs features_args;
  auto* features = app.add_subcommand("features", "feature maps of dotted paths for images: .pth tensors, PNG grids, an index page");
  features->add_option("recipe", features_args.recipe, "recipe YAML file, or a model exported with graft export --format torchscript")->required();
  features->add_option("images", features_args.images, "image files (PNG, JPEG)")->required();
  features->add_option("--checkpoint", features_args.checkpoint, "checkpoint or weights file (default: the recipe's weights)");
  features->add_option("--layers", features_args.layers, "dotted paths, comma-separated: layer3,layer4.1.conv2")
      ->delimiter(',')->required();
  features->add_option("--out", features_args.out, "output directory (default ./features)");
  features->add_option("--set", features_args.overrides, "override a recipe key: KEY.PATH=VALUE")->allow_extra_args(false);
  graft::cli::ReportArgs report_args;
  auto* report = app.add_subcommand("report", "one self-contained HTML page of run dirs: curves, confusion matrix, ...");
  report->add_option("run_dirs", report_args.run_dirs, "run dirs (several: overlaid)")->required();
  report->add_option("-o,--out", report_args.out, "output file (default RUN_DIR/report.html, or ./report.html for several)");

  graft::cli::LaunchArgs launch_args;
  auto* launch = app.add_subcommand("launch", "start the ranks of a multi-process run on this node (torchrun without Python)");
  launch->add_option("--nproc-per-node", launch_args.nproc_per_node, "ranks on this node (default 1)");
  launch->add_option("--nnodes", launch_args.nnodes, "nodes of the run (default 1)");
  launch->add_option("--node-rank", launch_args.node_rank, "this node's number in [0, nnodes) (default 0)");
  launch->add_option("--master", launch_args.master, "ADDR:PORT of node 0 (default, one node: 127.0.0.1 and a free port)");
  launch->add_option("--max-restarts", launch_args.max_restarts, "restart the whole group with --resume auto up to K times");
  launch->add_option("--rdzv-timeout", launch_args.rdzv_timeout, "seconds to reach the master and meet every rank (default 60)");
  launch->add_option("--timeout", launch_args.timeout, "seconds a collective may wait for the other ranks (default 1800)");
  launch->add_option("--grace", launch_args.grace_seconds, "seconds between SIGTERM and SIGKILL to the ranks of a failed group (default 30)");
  launch->add_option("command", launch_args.command, "after --: train RECIPE [--set ...] [--run-dir DIR] [--resume auto]")->required();

  graft::cli::NewPluginArgs new_plugin_args;
  auto* new_plugin = app.add_subcommand("new-plugin", "write a ready-to-build out-of-tree plugin project");
  new_plugin->add_option("kind", new_plugin_args.kind, "the plugin kind (graft plugins lists them: backbone, module, hook, ...)")
      ->required();
  new_plugin->add_option("name", new_plugin_args.name, "the plugin's name (lower case, digits, _)")->required();
  new_plugin->add_option("dir", new_plugin_args.dir, "where to write the project (default ./NAME; must be new or empty)");

  auto* version = app.add_subcommand("version", "graft, plugin ABI and LibTorch versions");
  version->add_flag("--json", json, "print one JSON object on stdout");

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << " (run 'graft --help')\n";
    return 2;
  }

  setup_logging(log_level);
  try {
    // a plugin path that does not exist is a mistake to say, not a directory to skip
    if (const char* env = std::getenv("GRAFT_PLUGIN_PATH")) {
      std::string all = std::string(env) + ":", entry;
      for (char c : all) {
        if (c != ':') {
          entry += c;
          continue;
        }
        std::error_code ec;
        if (!entry.empty() && !std::filesystem::exists(entry, ec))
          throw graft::Error::usage("GRAFT_PLUGIN_PATH: " + entry + ": no such plugin library or directory");
        entry.clear();
      }
    }
    if (plugins->parsed()) return graft::cli::cmd_plugins(kind, json);
    if (app.got_subcommand("check")) return graft::cli::cmd_check(check_args);
    if (train->parsed()) return graft::cli::cmd_train(train_args);
    if (evaluate->parsed()) return graft::cli::cmd_eval(eval_args);
    if (app.got_subcommand("inspect")) return graft::cli::cmd_inspect(inspect_args);
    if (exporter->parsed()) return graft::cli::cmd_export(export_args);
    if (predict->parsed()) return graft::cli::cmd_predict(predict_args);
    if (convert->parsed()) return graft::cli::cmd_convert(convert_args);
    if (version->parsed()) return graft::cli::cmd_version(json);
    if (launch->parsed()) return graft::cli::cmd_launch(launch_args);
    if (features->parsed()) return graft::cli::cmd_features(features_args);
    if (report->parsed()) return graft::cli::cmd_report(report_args);
    if (new_plugin->parsed()) return graft::cli::cmd_new_plugin(new_plugin_args);
  } catch (const graft::Error& e) {
    std::cerr << std::string("error: ") + e.what() + "\n";  // one write: ranks share the terminal
    return e.exit_code();
  } catch (const std::exception& e) {
    std::string what = e.what();
    std::cerr << "error: " + what.substr(0, what.find('\n')) + "\n";
    return 1;
  }
  return 2;
}
