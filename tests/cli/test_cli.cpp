// End-to-end: the graft binary run as a user runs it.
#define BOOST_TEST_MODULE cli
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "graft/host/serialize.h"
#include "support/run.h"
#include "support/standins.h"

namespace fs = std::filesystem;
using graft::test::contains;
using graft::test::run;
using nlohmann::json;

namespace {
const std::string graft_bin = GRAFT_BIN;
const std::string source_dir = GRAFT_SOURCE_DIR;

std::string fixture(const std::string& name) { return std::string(GRAFT_FIXTURE_DIR) + "/lib" + name + ".so"; }

struct Dir {
  fs::path path = graft::test::temp_dir("cli");
  ~Dir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
    return (path / name).string();
  }
};

std::vector<std::string> names_of(const json& plugins) {
  std::vector<std::string> n;
  for (const auto& p : plugins) n.push_back(p["name"]);
  return n;
}
bool has(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }
}  // namespace

BOOST_AUTO_TEST_CASE(plugins_json_lists_builtin_plugins_with_keys) {
  const auto r = run("env -u GRAFT_PLUGIN_PATH " + graft_bin + " plugins --json");
  BOOST_TEST_REQUIRE(r.code == 0, r.err);
  const auto j = json::parse(r.out);  // stdout holds the JSON and nothing else
  BOOST_REQUIRE(j.is_array());
  const auto names = names_of(j);
  for (const char* n : {"lenet", "simple_cnn", "mlp"}) BOOST_TEST(has(names, n), n);
  for (const auto& p : j) {
    BOOST_TEST(p.contains("kind"));
    BOOST_TEST(p.contains("doc"));
    BOOST_TEST(fs::exists(p["library"].get<std::string>()));
    if (p["name"] == "simple_cnn") {
      BOOST_TEST(p["kind"] == "backbone");
      bool found = false;
      for (const auto& k : p["keys"])
        if (k["name"] == "num_classes") found = k["type"] == "int" && k["default"] == "10";
      BOOST_TEST(found);
    }
  }
}

BOOST_AUTO_TEST_CASE(plugins_by_kind_and_unknown_kind) {
  const auto r = run(graft_bin + " plugins backbone");
  BOOST_TEST(r.code == 0);
  BOOST_TEST(contains(r.out, "simple_cnn"));
  BOOST_TEST(contains(r.out, "num_classes"));
  const auto bad = run(graft_bin + " plugins backbon");
  BOOST_TEST(bad.code == 2);
  BOOST_TEST(contains(bad.err, "unknown plugin kind 'backbon' (did you mean 'backbone'?)"));
}

// The lines `graft plugins` prints for one plugin: its own line, then one per key.
std::vector<std::string> plugin_block(const std::string& out, const std::string& plugin) {
  std::vector<std::string> lines;
  std::istringstream in(out);
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    const bool plugin_line = line.rfind("  ", 0) == 0 && line.size() > 2 && line[2] != ' ';
    if (plugin_line) inside = line.rfind("  " + plugin + " ", 0) == 0;
    if (inside) lines.push_back(line);
  }
  return lines;
}

std::string padded(const std::string& s, std::size_t width) { return s + std::string(width > s.size() ? width - s.size() : 0, ' '); }

BOOST_AUTO_TEST_CASE(plugins_show_constraints_and_defaults_as_written) {
  const auto r = run("env -u GRAFT_PLUGIN_PATH " + graft_bin + " plugins scheduler");
  BOOST_TEST_REQUIRE(r.code == 0, r.err);
  const auto plateau = plugin_block(r.out, "reduce_on_plateau");
  BOOST_REQUIRE(plateau.size() == 10u);  // the plugin and its nine keys
  // A column of constraints, as wide as the widest of this plugin's ("one of: min, max"),
  // then two spaces.
  auto key_line = [](const std::string& name, const std::string& type, const std::string& def, const std::string& rule,
                     const std::string& doc) {
    return "      " + padded(name, 18) + " " + padded(type, 12) + " " + padded(def, 14) + " " + padded(rule, 16) + "  " + doc;
  };
  BOOST_TEST(plateau[2] == key_line("mode", "string", "= \"min\"", "one of: min, max", "min: lower is better; max: higher"));
  BOOST_TEST(plateau[3] == key_line("factor", "float", "= 0.1", "in [0, 1)", "new lr = lr * factor"));
  BOOST_TEST(plateau[4] == key_line("patience", "int", "= 10", ">= 0", "steps without improvement tolerated before a reduction"));
  BOOST_TEST(plateau[9] == key_line("eps", "float", "= 1e-08", ">= 0", "a reduction smaller than eps is not applied"));

  const auto cycle = plugin_block(r.out, "one_cycle");
  const auto has_line = [&](const std::string& start, const std::string& part) {
    return std::any_of(cycle.begin(), cycle.end(), [&](const std::string& l) {
      return l.rfind("      " + start, 0) == 0 && contains(l, part);
    });
  };
  BOOST_TEST(has_line("pct_start ", "= 0.3 "));  // not 0.29999999999999999
  BOOST_TEST(has_line("pct_start ", " in (0, 1) "));
  BOOST_TEST(has_line("base_momentum ", "= 0.85 "));
  BOOST_TEST(has_line("anneal_strategy ", " one of: cos, linear "));
  BOOST_TEST(has_line("total_steps ", " >= 2 "));

  const auto j = run("env -u GRAFT_PLUGIN_PATH " + graft_bin + " plugins scheduler --json");
  BOOST_TEST_REQUIRE(j.code == 0, j.err);
  json factor, mode, eta_min;
  for (const auto& p : json::parse(j.out))
    for (const auto& k : p["keys"]) {
      if (p["name"] == "reduce_on_plateau" && k["name"] == "factor") factor = k;
      if (p["name"] == "reduce_on_plateau" && k["name"] == "mode") mode = k;
      if (p["name"] == "cosine" && k["name"] == "eta_min") eta_min = k;
    }
  BOOST_TEST(factor["default"] == "0.1");
  const json factor_rule = {{"min", {{"value", 0.0}, {"exclusive", false}}},
                            {"max", {{"value", 1.0}, {"exclusive", true}}},
                            {"text", "in [0, 1)"}};
  BOOST_TEST(factor["constraints"] == factor_rule);
  const json mode_rule = {{"choices", {"min", "max"}}, {"text", "one of: min, max"}};
  BOOST_TEST(mode["constraints"] == mode_rule);
  BOOST_TEST(eta_min["constraints"] == json::object());  // none declared
}

BOOST_AUTO_TEST_CASE(check_accepts_every_shipped_recipe) {
  // Recipes naming torchvision weights get stand-ins (random weights of the right
  // architecture, written by Python) in a private hub cache, offline.
  // cifar10_vgg16.yaml reads data/cifar-10-batches-bin: a small one is made there
  Dir d;
  graft::test::write_standin_weights(d.path);
  graft::test::write_cifar10(d.path / "data" / "cifar-10-batches-bin", 20);
  int checked = 0;
  for (const auto& entry : fs::recursive_directory_iterator(source_dir + "/recipes")) {
    if (entry.path().extension() != ".yaml") continue;
    // needs the weights its pretraining writes: test_recipes runs the two in order
    if (entry.path().filename() == "finetune.yaml") continue;
    const auto r = run("cd " + d.path.string() + " && TORCH_HOME=" + d.path.string() + " GRAFT_OFFLINE=1 " + graft_bin +
                       " check " + entry.path().string() + " --json");
    BOOST_TEST_CONTEXT(entry.path().string()) {
      BOOST_TEST(r.code == 0, r.err);
      if (r.code == 0) BOOST_TEST(json::parse(r.out)["ok"] == true);
    }
    ++checked;
  }
  BOOST_TEST(checked >= 4);
}

BOOST_AUTO_TEST_CASE(inspect_summary_and_dot) {
  Dir d;
  const auto dot = (d.path / "model.dot").string();
  const auto r = run(graft_bin + " inspect " + source_dir + "/recipes/fashion_mnist_cnn.yaml --summary --dot " + dot);
  BOOST_TEST_REQUIRE(r.code == 0, r.err);
  BOOST_TEST(contains(r.out, "features.0"));
  BOOST_TEST(contains(r.out, "[1, 32, 28, 28]"));
  BOOST_TEST(contains(r.out, "Input shape: [1, 1, 28, 28]"));
  BOOST_TEST(contains(r.out, "Trainable params: 824,650 (0.82M)"));
  const std::string graph = graft::test::slurp(dot);
  BOOST_TEST(contains(graph, "digraph \"simple_cnn\""));
  BOOST_TEST(contains(graph, "\"features.7\" -> \"flatten\""));
  BOOST_TEST(contains(graph, "\"classifier.3\" -> \"output\""));

  const auto j = run(graft_bin + " inspect " + source_dir + "/recipes/fashion_mnist_cnn.yaml --summary --json --input-shape 1,32,32");
  BOOST_TEST_REQUIRE(j.code != 0);  // the classifier is sized for 28x28
  BOOST_TEST(contains(j.err, "the model does not run on input [1, 1, 32, 32]"));
  const auto m = run(graft_bin + " inspect " + source_dir + "/recipes/fashion_mnist_cnn.yaml --summary --json");
  const auto rows = json::parse(m.out)["summary"];
  BOOST_TEST(rows[1]["path"] == "features.0");
  BOOST_TEST(rows[1]["output_shape"] == json({1, 32, 28, 28}));
  BOOST_TEST(rows[1]["origin"] == "new");
}

BOOST_AUTO_TEST_CASE(check_misspelled_key_exits_2_with_location_and_suggestion) {
  Dir d;
  const auto f = d.write("r.yaml", "model:\n  backbone:\n    name: simple_cnn\n    num_clases: 10\n");
  const auto r = run(graft_bin + " check " + f);
  BOOST_TEST(r.code == 2);
  BOOST_TEST(r.out.empty());
  BOOST_TEST(r.err == "error: " + f +
                          ":4:5: model.backbone.num_clases: unknown key 'num_clases' in backbone simple_cnn "
                          "(did you mean 'num_classes'?)\n");
}

BOOST_AUTO_TEST_CASE(check_reports_recipe_faults_with_exit_2) {
  Dir d;
  const auto recipe = source_dir + "/recipes/fashion_mnist_cnn.yaml";
  const auto set = run(graft_bin + " check " + recipe + " --set model.backbone.widht=16");
  BOOST_TEST(set.code == 2);
  BOOST_TEST(contains(set.err, "--set model.backbone.widht=16: model.backbone.widht: unknown key 'widht' in backbone "
                               "simple_cnn (did you mean 'width'?)"));
  const auto section = run(graft_bin + " check " + d.write("s.yaml", "modle:\n  backbone: lenet\n"));
  BOOST_TEST(section.code == 2);
  BOOST_TEST(contains(section.err, "s.yaml:1:1: modle: unknown key 'modle' in the recipe (did you mean 'model'?)"));
  const auto backbone = run(graft_bin + " check " + d.write("b.yaml", "model:\n  backbone: lenett\n"));
  BOOST_TEST(backbone.code == 2);
  BOOST_TEST(contains(backbone.err, "b.yaml:2:13: model.backbone: unknown backbone 'lenett' (did you mean 'lenet'?)"));
  const auto type = run(graft_bin + " check " + d.write("t.yaml", "model:\n  backbone: {name: lenet, num_classes: ten}\n"));
  BOOST_TEST(type.code == 2);
  BOOST_TEST(contains(type.err, "model.backbone.num_classes: expected an integer, got 'ten'"));
  const auto missing = run(graft_bin + " check " + d.write("m.yaml", "seed: 1\n"));
  BOOST_TEST(missing.code == 2);
  BOOST_TEST(contains(missing.err, "missing required key 'model'"));
  const auto syntax = run(graft_bin + " check " + d.write("y.yaml", "model: [\n"));
  BOOST_TEST(syntax.code == 2);
  BOOST_TEST(contains(syntax.err, "YAML syntax error"));
  const auto nofile = run(graft_bin + " check " + (d.path / "none.yaml").string());
  BOOST_TEST(nofile.code == 2);
  BOOST_TEST(contains(nofile.err, "none.yaml: cannot open recipe file"));
  // Each fault is one line.
  for (const auto* r : {&set, &section, &backbone, &type, &missing, &syntax, &nofile})
    BOOST_TEST(std::count(r->err.begin(), r->err.end(), '\n') == 1, r->err);
}

BOOST_AUTO_TEST_CASE(usage_errors_exit_2) {
  BOOST_TEST(run(graft_bin).code == 2);
  BOOST_TEST(run(graft_bin + " frobnicate").code == 2);
  BOOST_TEST(run(graft_bin + " check").code == 2);
  BOOST_TEST(run(graft_bin + " --log-level loud plugins").code == 2);
  BOOST_TEST(run(graft_bin + " --help").code == 0);
  // plugin paths that do not exist: the variable, or the recipe's file:line, is named
  const auto env = run("GRAFT_PLUGIN_PATH=/no/such/dir " + graft_bin + " plugins");
  BOOST_TEST(env.code == 2);
  BOOST_TEST(env.err == "error: GRAFT_PLUGIN_PATH: /no/such/dir: no such plugin library or directory\n");
  const auto dir = graft::test::temp_dir("plugin_path");
  std::ofstream(dir / "r.yaml") << "plugins: [missing/libx.so]\nmodel: {backbone: lenet}\n";
  const auto recipe = run("env -u GRAFT_PLUGIN_PATH " + graft_bin + " check " + (dir / "r.yaml").string());
  BOOST_TEST(recipe.code == 2);
  BOOST_TEST(recipe.err == "error: " + (dir / "r.yaml").string() + ":1:11: plugins: " + (dir / "missing/libx.so").string() +
                               ": no such plugin library or directory\n");
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(inspect_prints_the_tree_and_counts) {
  const auto r = run(graft_bin + " inspect " + source_dir + "/recipes/fashion_mnist_cnn.yaml");
  BOOST_TEST_REQUIRE(r.code == 0, r.err);
  BOOST_TEST(contains(r.out, "simple_cnn(\n  (features): Stages(\n    (0): Conv2d(1, 32"));
  BOOST_TEST(contains(r.out, "Total params: 824,650 (0.82M)"));
  const auto j = run(graft_bin + " inspect " + source_dir + "/recipes/fashion_mnist_cnn.yaml --json");
  BOOST_TEST_REQUIRE(j.code == 0, j.err);
  const auto out = json::parse(j.out);
  BOOST_TEST(out["total"] == 824650);
  BOOST_TEST(out["parameters"][0]["name"] == "features.0.weight");
}

BOOST_AUTO_TEST_CASE(plugin_path_from_environment_and_from_the_recipe) {
  const auto env = run("GRAFT_PLUGIN_PATH=" + std::string(GRAFT_FIXTURE_DIR) + " " + graft_bin + " plugins --json");
  BOOST_TEST_REQUIRE(env.code == 0, env.err);
  const auto names = names_of(json::parse(env.out));
  BOOST_TEST(has(names, "test_tiny"));
  BOOST_TEST(has(names, "lenet"));
  // Refused libraries are reported on stderr, one line each, never skipped silently.
  BOOST_TEST(contains(env.err, "libgraft_test_abi_mismatch.so refused: built for graft plugin ABI 999"));
  BOOST_TEST(contains(env.err, "libgraft_test_torch_mismatch.so refused: built with LibTorch 0.4.1"));
  BOOST_TEST(contains(env.err, "libgraft_test_not_a_plugin.so refused: not a graft plugin"));
  BOOST_TEST(contains(env.err, "libgraft_test_duplicate.so refused: duplicate backbone 'lenet'"));

  Dir d;
  fs::create_directories(d.path / "libs");
  fs::copy_file(fixture("graft_test_good"), d.path / "libs" / "libgood.so");
  const auto f = d.write("r.yaml", "plugins: [libs/libgood.so]\nmodel:\n  backbone: {name: test_tiny, out: 3}\n");
  const auto r = run("env -u GRAFT_PLUGIN_PATH " + graft_bin + " check " + f + " --json");
  BOOST_TEST_REQUIRE(r.code == 0, r.err);
  const auto plan = json::parse(r.out);
  BOOST_TEST(plan["plugins"][0]["name"] == "test_tiny");
  BOOST_TEST(contains(plan["plugins"][0]["library"].get<std::string>(), "libgood.so"));
}

BOOST_AUTO_TEST_CASE(no_silent_plugin_shadowing) {
  // libgraft_test_duplicate.so provides a second backbone 'lenet' (the built-in one is in
  // libgraft_backbones.so)
  Dir d;
  const auto dup = fixture("graft_test_duplicate");
  const std::string builtin = std::string(GRAFT_BUILD_DIR) + "/lib/graft/plugins/libgraft_backbones.so";
  // the recipe's plugins: library wins over the search path, said in one line
  const auto mine = d.write("mine.yaml", "plugins: [" + dup + "]\nmodel: {backbone: lenet}\n");
  const auto r = run("env -u GRAFT_PLUGIN_PATH " + graft_bin + " check " + mine + " --json");
  BOOST_TEST_REQUIRE(r.code == 0, r.err);
  BOOST_TEST(json::parse(r.out)["plugins"][0]["library"] == dup);
  BOOST_TEST(r.err == "warning: plugin library " + dup + " (the recipe's plugins:) is used over " + builtin +
                          " for backbone 'lenet'\n");
  // two libraries of the search path: a recipe that uses the name is refused, naming both
  const auto uses = d.write("uses.yaml", "model: {backbone: lenet}\n");
  const auto both = run("GRAFT_PLUGIN_PATH=" + dup + " " + graft_bin + " check " + uses);
  BOOST_TEST(both.code == 2);
  BOOST_TEST(contains(both.err, "error: " + uses + ":1:19: model.backbone: backbone 'lenet' is provided by " + builtin +
                                    " and " + dup),
             both.err);
  // ... and one that does not use it only sees the warning
  const auto other = d.write("other.yaml", "model: {backbone: simple_cnn}\n");
  const auto fine = run("GRAFT_PLUGIN_PATH=" + dup + " " + graft_bin + " check " + other);
  BOOST_TEST(fine.code == 0, fine.err);
  BOOST_TEST(contains(fine.err, "warning: plugin library " + dup + " refused: duplicate backbone 'lenet'"), fine.err);
}

BOOST_AUTO_TEST_CASE(a_throwing_plugin_is_one_line_and_exit_1) {
  Dir d;
  const auto lib = fixture("graft_test_throwing");
  const auto broken = d.write("r.yaml", "plugins: [" + lib + "]\nmodel:\n  backbone: test_broken_net\n");
  const auto r = run(graft_bin + " check " + broken);
  BOOST_TEST(r.code == 1);
  BOOST_TEST(r.err == "error: " + broken +
                          ":3:13: backbone 'test_broken_net' (libgraft_test_throwing.so) failed: out of coffee\n");
  // The rest of that library's plugins, and everything else, stay usable.
  const auto fine = d.write("f.yaml", "plugins: [" + lib + "]\nmodel:\n  backbone: lenet\n");
  BOOST_TEST(run(graft_bin + " check " + fine).code == 0);
}

// graft check is a dry run of the first training step: each mistake below passed the
// recipe's static checks and failed only in `graft train`, some without a location.
BOOST_AUTO_TEST_CASE(check_dry_runs_the_first_step_and_names_what_fails) {
  Dir d;
  d.write("base.yaml", "plugins: [" + fixture("graft_test_throwing") + ", " + fixture("graft_test_hooks") +
                           "]\n"
                           "model: {backbone: {name: mlp, hidden: [16], num_classes: 10}}\n"
                           "data: {dataset: {name: synthetic, train_size: 64, test_size: 32}, batch_size: 16, workers: 0}\n"
                           "optimizer: {name: sgd, lr: 0.1, momentum: 0.9}\n"
                           "scheduler: {name: cosine}\n"
                           "metrics: [accuracy, per_class_accuracy]\n");
  const auto check = [&](const std::string& name, const std::string& text) {
    return run("cd " + d.path.string() + " && " + graft_bin + " check " + d.write(name, "base: base.yaml\n" + text));
  };
  // the base recipe passes: one batch, forward, loss, backward, a step, its checkpoint in memory
  const auto ok = run(graft_bin + " check " + (d.path / "base.yaml").string() + " --json");
  BOOST_TEST_REQUIRE(ok.code == 0, ok.err);
  const auto dry = json::parse(ok.out)["dry_run"];
  BOOST_TEST(dry["input_shape"] == json({8, 1, 28, 28}));
  BOOST_TEST(dry["output_shape"] == json({8, 10}));
  BOOST_TEST(dry["classes"] == 10);
  BOOST_TEST(dry["stepped"] == true);
  BOOST_TEST(dry["state_bytes"].get<std::int64_t>() > 0);

  // a hook whose factory throws
  const auto hook = check("hook.yaml", "hooks: [test_broken_hook]\n");
  BOOST_TEST(hook.code == 1);
  BOOST_TEST(hook.err == "error: " + (d.path / "hook.yaml").string() +
                             ":2:9: hook 'test_broken_hook' (libgraft_test_throwing.so) failed: no sink configured\n");
  // a file to write in a directory that does not exist
  const auto file = check("file.yaml", "hooks: [{name: record, file: nodir/calls.txt}]\n");
  BOOST_TEST(file.code == 2);
  BOOST_TEST(file.err == "error: " + (d.path / "file.yaml").string() +
                             ":2:30: hooks.0.file: the directory 'nodir' of this file to write does not exist\n");
  // a sample shape that is no image: the dataset's own key says so
  const auto flat = check("flat.yaml", "data: {dataset: {shape: [3, 32]}}\n");
  BOOST_TEST(flat.code == 2);
  BOOST_TEST(contains(flat.err, "flat.yaml:2:25: data.dataset.shape: must have 3 items, got 2"), flat.err);
  // images the model was not made for: the module at fault and the shapes that went in
  const auto shape = check("shape.yaml", "data: {dataset: {shape: [3, 32, 32]}}\n");
  BOOST_TEST(shape.code == 2);
  BOOST_TEST(shape.err == "error: " + (d.path / "base.yaml").string() +
                              ":2:19: model: a training batch of [8, 3, 32, 32] does not go through the model at 1 "
                              "(torch::nn::Linear(in_features=784, out_features=16, bias=true)) got [8, 3072]: mat1 and "
                              "mat2 shapes cannot be multiplied (8x3072 and 784x16)\n");
  // a model of 5 classes on data of 10
  const auto classes = check("classes.yaml", "model: {backbone: {num_classes: 5}}\n");
  BOOST_TEST(classes.code == 2);
  BOOST_TEST(contains(classes.err, "model: gives 5 outputs, but the data has 10 classes: the targets 5..9 are no output"),
             classes.err);
  // a module whose forward fails, inserted by surgery
  const auto boom = check("boom.yaml", "model: {input_shape: [1, 28, 28], surgery: [{insert_after: '2', name: boom, with: test_forward_fails}]}\n");
  BOOST_TEST(boom.code == 2);
  BOOST_TEST(contains(boom.err, "does not go through the model at boom ("), boom.err);
  BOOST_TEST(contains(boom.err, ") got [8, 16]: index 7 is out of bounds for dimension 1 with size 16\n"), boom.err);
  // a scheduler that throws at its first step
  const auto sched = check("sched.yaml", "scheduler: {name: test_flaky_scheduler, throw_at_count: 1}\n");
  BOOST_TEST(sched.code == 1);
  BOOST_TEST(sched.err == "error: " + (d.path / "sched.yaml").string() +
                              ":2:12: scheduler 'test_flaky_scheduler' (libgraft_test_throwing.so) failed: schedule "
                              "table exhausted\n");
  // a metric that throws on its first update
  const auto metric = check("metric.yaml", "metrics: [{name: test_flaky_metric, throw_at_update: 1}]\n");
  BOOST_TEST(metric.code == 1);
  BOOST_TEST(metric.err == "error: " + (d.path / "metric.yaml").string() +
                               ":2:11: metric 'test_flaky_metric' (libgraft_test_throwing.so) failed: histogram overflow\n");
  // and graft train runs the same dry run first: nothing of a run is made
  const auto train = run("cd " + d.path.string() + " && " + graft_bin + " train " + (d.path / "classes.yaml").string() +
                         " --run-dir run");
  BOOST_TEST(train.code == 2);
  BOOST_TEST(contains(train.err, "model: gives 5 outputs, but the data has 10 classes"), train.err);
  BOOST_TEST(!fs::exists(d.path / "run"));
}

BOOST_AUTO_TEST_CASE(out_of_tree_plugin_builds_against_the_installed_package) {
  Dir d;
  const auto prefix = d.path / "prefix";
  const std::string cmake = GRAFT_CMAKE;
  const auto install = run(cmake + " --install " + GRAFT_BUILD_DIR + " --prefix " + prefix.string());
  BOOST_TEST_REQUIRE(install.code == 0, install.out + install.err);
  BOOST_TEST(fs::exists(prefix / "bin/graft"));
  BOOST_TEST(fs::exists(prefix / "include/graft/plugin.h"));
  BOOST_TEST(fs::exists(prefix / "lib/cmake/graft/graftConfig.cmake"));

  // The installed graft finds its built-in plugins with no configuration.
  const auto builtin = run("env -u GRAFT_PLUGIN_PATH " + (prefix / "bin/graft").string() + " plugins --json");
  BOOST_TEST_REQUIRE(builtin.code == 0, builtin.err);
  BOOST_TEST(has(names_of(json::parse(builtin.out)), "simple_cnn"));

  const auto build = d.path / "hello-build";
  const auto configure = run(cmake + " -S " + source_dir + "/tests/out_of_tree -B " + build.string() +
                             " -DCMAKE_PREFIX_PATH=" + prefix.string() + " -DCMAKE_BUILD_TYPE=Release" +
                             " -DCMAKE_CXX_COMPILER_LAUNCHER=ccache");
  BOOST_TEST_REQUIRE(configure.code == 0, configure.out + configure.err);
  // ccache sees paths relative to the temp dir, so a rerun of this test hits its cache (the
  // compile of a LibTorch translation unit is most of this test's time otherwise)
  const auto compile = run("CCACHE_BASEDIR=" + d.path.string() + " " + cmake + " --build " + build.string());
  BOOST_TEST_REQUIRE(compile.code == 0, compile.out + compile.err);
  BOOST_TEST(fs::exists(build / "libhello_plugin.so"));

  const auto listed = run("GRAFT_PLUGIN_PATH=" + build.string() + " " + (prefix / "bin/graft").string() +
                          " plugins module --json");
  BOOST_TEST_REQUIRE(listed.code == 0, listed.err);
  const auto j = json::parse(listed.out);
  BOOST_REQUIRE(j.size() >= 1u);
  BOOST_TEST(has(names_of(j), "hello_head"));
  BOOST_TEST(listed.err.empty(), listed.err);  // nothing refused

  // An optimizer graft does not ship (Lion), built the same way, goes end to end: its real
  // settings in `graft check`, training, checkpoints, an exact resume, Python reading them.
  BOOST_TEST_REQUIRE(fs::exists(build / "liblion_optimizer.so"));
  const std::string with = "GRAFT_PLUGIN_PATH=" + build.string() + " ";
  const std::string graft = with + (prefix / "bin/graft").string();
  const auto recipe = d.write("lion.yaml", R"(
seed: 3
model: {backbone: {name: simple_cnn, width: 8, hidden: 32}}
data:
  dataset: {name: synthetic, train_size: 192, test_size: 32}
  val: none
  batch_size: 32
  workers: 0
optimizer: {name: lion, lr: 0.0003, betas: [0.9, 0.99], weight_decay: 0.01, groups: [{bias: true, weight_decay: 0}]}
scheduler: {name: cosine, interval: step}
checkpoint: [save_last, {name: every_n_steps, n: 4}]
trainer: {epochs: 2, threads: 1, test: false}
)");
  const auto check = run(graft + " check " + recipe);
  BOOST_TEST_REQUIRE(check.code == 0, check.out + check.err);
  BOOST_TEST(contains(check.out, "lr 0.0003 betas [0.9, 0.99] weight_decay 0.01"), check.out);
  BOOST_TEST(contains(check.out, "lr 0.0003 betas [0.9, 0.99] weight_decay 0\n"), check.out);  // the bias rule
  const auto a = d.path / "a", b = d.path / "b";
  const auto full = run(graft + " train " + recipe + " --progress 0 --run-dir " + a.string());
  BOOST_TEST_REQUIRE(full.code == 0, full.err);
  const auto resumed = run(graft + " train " + recipe + " --progress 0 --run-dir " + b.string() + " --resume " +
                           (a / "checkpoints/step-00000004.pth").string());
  BOOST_TEST_REQUIRE(resumed.code == 0, resumed.err);
  BOOST_TEST(contains(resumed.err, "resumed from"), resumed.err);
  // bit-identical: weights and Lion's own state, tensor by tensor
  const auto x = graft::read_torch_file((a / "checkpoints/last.pth").string()).toGenericDict();
  const auto y = graft::read_torch_file((b / "checkpoints/last.pth").string()).toGenericDict();
  BOOST_TEST(x.at("step").toInt() == 12);
  BOOST_TEST(y.at("step").toInt() == 12);
  for (const auto& e : x.at("model_state_dict").toGenericDict())
    BOOST_TEST(torch::equal(e.value().toTensor(), y.at("model_state_dict").toGenericDict().at(e.key()).toTensor()), e.key().toStringRef());
  const auto sx = x.at("optimizer_state_dict").toGenericDict().at("state").toGenericDict();
  const auto sy = y.at("optimizer_state_dict").toGenericDict().at("state").toGenericDict();
  BOOST_TEST_REQUIRE(sx.size() == sy.size());
  BOOST_TEST(sx.size() > 0u);
  for (const auto& e : sx)
    BOOST_TEST(torch::equal(e.value().toGenericDict().at("exp_avg").toTensor(),
                            sy.at(e.key()).toGenericDict().at("exp_avg").toTensor()));
  // Python's torch.load reads it: Lion's keys, per group, by parameter name
  const auto py = run("/usr/bin/python3 -c \"import torch; c = torch.load('" + (a / "checkpoints/last.pth").string() +
                      "'); o = c['optimizer_state_dict']; g = o['param_groups']; "
                      "print(len(g), g[0]['betas'], g[1]['weight_decay'], g[0]['param_names'][0], "
                      "tuple(o['state'][0]['exp_avg'].shape))\"");
  BOOST_TEST_REQUIRE(py.code == 0, py.err);
  BOOST_TEST(contains(py.out, "2 [0.9, 0.99] 0.0 features.0.weight (8, 1, 3, 3)"), py.out);
}
