// The fit loop end to end on small synthetic data: learning, determinism across worker
// counts, gradient accumulation, hook order, clipping, NaN detection, schedulers,
// gradual unfreezing, stops, early stopping, the run dir and `graft eval`.
#define BOOST_TEST_MODULE trainer
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "graft/error.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "graft/host/serialize.h"
#include "graft/host/trainer.h"
#include "support/plugins.h"
#include "support/run.h"

namespace fs = std::filesystem;
using graft::test::contains;
using graft::test::error_of;
using graft::test::run;
using graft::test::slurp;

namespace {

// The built-in plugins plus the fixture plugin that records hook calls.
graft::Registry& registry() {
  static bool scanned = false;
  if (!scanned) graft::test::registry().scan({std::string(GRAFT_FIXTURE_DIR) + "/libgraft_test_hooks.so"});
  scanned = true;
  return graft::test::registry();
}

// A small problem: 10 classes of noisy 1x28x28 patterns, an MLP, SGD.
const std::string base_recipe = R"(
seed: 3
model:
  backbone: {name: mlp, hidden: [64], num_classes: 10}
data:
  dataset: {name: synthetic, train_size: 320, test_size: 160, noise: 0.5}
  batch_size: 32
  workers: 0
optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
trainer: {epochs: 3, threads: 1, log_every: 5}
)";

struct Run {
  fs::path dir;
  graft::FitResult result;
  std::string recipe_file;
};

Run fit(const std::string& extra_yaml, const std::vector<std::string>& overrides = {}) {
  Run r;
  r.dir = graft::test::temp_dir("trainer");
  r.recipe_file = (r.dir / "recipe.yaml").string();
  std::ofstream(r.dir / "base.yaml") << base_recipe;
  std::ofstream(r.recipe_file) << "base: base.yaml\n" << extra_yaml;
  const auto recipe = graft::load_recipe(r.recipe_file, overrides);
  graft::TrainOptions options;
  options.run_dir = (r.dir / "run").string();
  options.progress = false;
  r.result = graft::fit(recipe, registry(), options);
  return r;
}

std::vector<std::string> lines_of(const fs::path& file) {
  std::ifstream in(file);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string field(const std::string& line, const std::string& key) {
  const auto at = line.find(" " + key + "=");
  if (at == std::string::npos) return {};
  const auto start = at + key.size() + 2;
  return line.substr(start, line.find(' ', start) - start);
}

bool same_weights(const fs::path& a, const fs::path& b) {
  const auto x = graft::load_state_dict(a.string()), y = graft::load_state_dict(b.string());
  if (x.size() != y.size()) return false;
  for (const auto& item : x)
    if (!y.find(item.key()) || !torch::equal(item.value(), y[item.key()])) return false;
  return true;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_run_learns_and_writes_its_run_dir) {
  const auto r = fit("");
  BOOST_TEST(r.result.epochs == 3);
  BOOST_TEST(r.result.steps == 30);
  BOOST_TEST(r.result.stop_reason == "epochs");
  BOOST_REQUIRE(r.result.test);
  BOOST_TEST(r.result.test->samples == 160);
  BOOST_TEST(r.result.test->metrics.at("top1") > 0.6);  // chance is 0.1
  const fs::path out = r.dir / "run";
  for (const char* f : {"recipe.yaml", "train.log", "metrics.jsonl", "report.txt", "report.json", "checkpoints/last.pth"})
    BOOST_TEST(fs::exists(out / f), f);
  // metrics.jsonl: a line every 5 steps and one per epoch, with validation metrics
  std::int64_t epoch_lines = 0, step_lines = 0;
  double first_loss = 0, last_loss = 0;
  for (const auto& line : lines_of(out / "metrics.jsonl")) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("val/top1")) {
      ++epoch_lines;
      if (epoch_lines == 1) first_loss = j["train/loss"];
      last_loss = j["train/loss"];
    } else {
      ++step_lines;
      BOOST_TEST(j["img_per_s"].get<double>() > 0);
    }
  }
  BOOST_TEST(epoch_lines == 3);
  BOOST_TEST(step_lines == 6);
  BOOST_TEST(last_loss < first_loss);
  BOOST_TEST(contains(slurp(out / "report.txt"), "top1"));
  BOOST_TEST(contains(slurp(out / "recipe.yaml"), "synthetic"));
  // the checkpoint is a dict Python's torch.load reads, with seed 001's keys
  const auto py = run(std::string(GRAFT_PYTHON) + " -c \"import torch; c = torch.load('" + (out / "checkpoints/last.pth").string() +
                      "'); print(sorted(c)); print(c['epoch'], c['step'], sorted(c['model_state_dict']))\"");
  BOOST_TEST(py.code == 0, py.err);
  BOOST_TEST(contains(py.out, "'epoch', 'graft', 'graft_version', 'hooks', 'loss', 'model_state_dict', 'optimizer_state_dict', 'step'"), py.out);
  BOOST_TEST(contains(py.out, "3 30 ['1.bias', '1.weight', '3.bias', '3.weight']"), py.out);
  fs::remove_all(r.dir);
}

BOOST_AUTO_TEST_CASE(runs_are_bitwise_identical_whatever_the_worker_count) {
  const std::string aug = R"(
data:
  dataset: {name: synthetic, train_size: 320, test_size: 160, noise: 0.5}
  batch_size: 32
  transforms: [{name: random_crop, size: 28, padding: 2}, random_horizontal_flip, to_tensor]
trainer: {epochs: 2, threads: 1, test: false}
)";
  const auto a = fit(aug, {"data.workers=0"});
  const auto b = fit(aug, {"data.workers=3", "data.prefetch=1"});
  const auto c = fit(aug, {"data.workers=0", "seed=4"});
  BOOST_TEST(same_weights(a.dir / "run/checkpoints/last.pth", b.dir / "run/checkpoints/last.pth"));
  BOOST_TEST(!same_weights(a.dir / "run/checkpoints/last.pth", c.dir / "run/checkpoints/last.pth"));
  for (const auto& r : {a, b, c}) fs::remove_all(r.dir);
}

BOOST_AUTO_TEST_CASE(accumulating_two_batches_equals_one_batch_twice_the_size) {
  const std::string plain = "\noptimizer: {name: sgd, lr: 0.05}\ntrainer: {epochs: 2, threads: 1, test: false}\n";
  const auto a = fit(plain, {"data.batch_size=16", "trainer.accumulate=2"});
  const auto b = fit(plain, {"data.batch_size=32"});
  BOOST_TEST(a.result.steps == b.result.steps);
  const auto x = graft::load_state_dict((a.dir / "run/checkpoints/last.pth").string());
  const auto y = graft::load_state_dict((b.dir / "run/checkpoints/last.pth").string());
  for (const auto& item : x) BOOST_TEST(torch::allclose(item.value(), y[item.key()], 1e-5, 1e-6), item.key());
  for (const auto& r : {a, b}) fs::remove_all(r.dir);
}

BOOST_AUTO_TEST_CASE(hooks_are_called_in_order_and_clipping_applies_before_the_step) {
  const auto dir = graft::test::temp_dir("hooks");
  const auto log = dir / "calls.txt";
  const auto r = fit("hooks: [{name: record, file: " + log.string() + "}]\n", {"trainer.epochs=2", "trainer.clip_grad_norm=0.01"});
  const auto lines = lines_of(log);
  std::vector<std::string> events;
  for (const auto& l : lines) events.push_back(l.substr(0, l.find(' ')));
  BOOST_REQUIRE(events.size() > 10u);
  BOOST_TEST(events.front() == "fit_start");
  BOOST_TEST(events.back() == "fit_end");
  BOOST_TEST(events[1] == "epoch_start");
  const std::vector<std::string> step = {"batch_start", "after_forward", "after_backward", "before_step", "after_step", "batch_end"};
  BOOST_TEST(std::vector<std::string>(events.begin() + 2, events.begin() + 8) == step, boost::test_tools::per_element());
  // each epoch: 10 steps, then validation, then epoch_end
  BOOST_TEST(std::count(events.begin(), events.end(), "after_step") == 20);
  const auto end0 = std::find(events.begin(), events.end(), "epoch_end");
  BOOST_TEST(*(end0 - 1) == "validation_end");
  BOOST_TEST(*(end0 - 2) == "validation_start");
  BOOST_TEST(contains(lines[static_cast<std::size_t>(end0 - events.begin())], "val/top1="));
  // the norm seen before the step is clipped to 0.01, the one after backward is not
  bool unclipped_seen = false;
  for (const auto& l : lines) {
    if (l.rfind("after_backward", 0) == 0 && std::stod(field(l, "grad_norm")) > 0.011) unclipped_seen = true;
    if (l.rfind("before_step", 0) == 0) BOOST_TEST(std::stod(field(l, "grad_norm")) <= 0.01 * (1 + 1e-5));
  }
  BOOST_TEST(unclipped_seen);
  fs::remove_all(r.dir);
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(value_clipping_bounds_every_gradient_element) {
  const auto dir = graft::test::temp_dir("hooks");
  const auto log = dir / "calls.txt";
  const auto r = fit("hooks: [{name: record, file: " + log.string() + "}]\n", {"trainer.epochs=1", "trainer.clip_grad_value=0.001"});
  int checked = 0;
  for (const auto& l : lines_of(log))
    if (l.rfind("before_step", 0) == 0) {
      BOOST_TEST(std::stod(field(l, "grad_max")) <= 0.001 * (1 + 1e-6));  // float32's 0.001
      ++checked;
    }
  BOOST_TEST(checked == 10);
  fs::remove_all(r.dir);
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(a_non_finite_loss_stops_the_run_naming_the_step_and_saves_nothing) {
  const auto dir = graft::test::temp_dir("nan");
  const auto recipe_file = dir / "r.yaml";
  std::ofstream(recipe_file) << base_recipe << "\n";
  const auto recipe = graft::load_recipe(recipe_file.string(), {"optimizer.lr=1e30"});
  graft::TrainOptions options;
  options.run_dir = (dir / "run").string();
  options.progress = false;
  const auto e = error_of([&] { graft::fit(recipe, registry(), options); });
  BOOST_TEST(e.exit_code() == 1);
  BOOST_TEST(contains(e.what(), "non-finite loss"), e.what());
  BOOST_TEST(contains(e.what(), "optimizer steps"), e.what());
  BOOST_TEST(!fs::exists(dir / "run/checkpoints/last.pth"));
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(an_epoch_scheduler_sets_each_groups_lr_as_pythons_steplr) {
  const auto dir = graft::test::temp_dir("sched");
  const auto log = dir / "calls.txt";
  const auto r = fit("scheduler: {name: step, step_size: 1, gamma: 0.5}\n"
                     "hooks: [{name: record, file: " + log.string() + "}]\n"
                     "optimizer: {name: sgd, lr: 0.1, groups: [{params: ['1.*'], lr: 0.4}]}\n");
  std::vector<std::string> lrs;
  for (const auto& l : lines_of(log))
    if (l.rfind("epoch_start", 0) == 0) lrs.push_back(field(l, "lrs"));
  BOOST_TEST(lrs == (std::vector<std::string>{"0.10000000000000001,0.40000000000000002", "0.050000000000000003,0.20000000000000001",
                                              "0.025000000000000001,0.10000000000000001"}),
             boost::test_tools::per_element());
  fs::remove_all(r.dir);
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(a_step_scheduler_advances_after_every_optimizer_step) {
  const auto dir = graft::test::temp_dir("sched");
  const auto log = dir / "calls.txt";
  const auto r = fit("scheduler: {name: exponential, gamma: 0.9, interval: step}\nhooks: [{name: record, file: " + log.string() + "}]\n",
                     {"trainer.epochs=1"});
  int k = 0;
  for (const auto& l : lines_of(log))
    if (l.rfind("batch_start", 0) == 0) {
      BOOST_TEST(std::stod(field(l, "lrs")) == 0.05 * std::pow(0.9, k), boost::test_tools::tolerance(1e-12));
      ++k;
    }
  BOOST_TEST(k == 10);
  fs::remove_all(r.dir);
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(a_plateau_schedule_steps_only_on_epochs_with_a_validation) {
  // mode max on val/loss while the loss falls: every validation after the first is "worse"
  const auto dir = graft::test::temp_dir("plateau");
  const auto log = dir / "calls.txt";
  const auto r = fit("scheduler: {name: reduce_on_plateau, mode: max, patience: 0, factor: 0.5}\n"
                     "hooks: [{name: record, file: " + log.string() + "}]\n",
                     {"trainer.epochs=5", "trainer.val_every=2", "trainer.test=false"});
  std::vector<std::string> lrs;
  for (const auto& l : lines_of(log))
    if (l.rfind("epoch_start", 0) == 0) lrs.push_back(field(l, "lrs"));
  // validations after epochs 2 and 4 (and the last): the first sets the best, the second reduces
  BOOST_TEST(lrs == (std::vector<std::string>{"0.050000000000000003", "0.050000000000000003", "0.050000000000000003",
                                              "0.050000000000000003", "0.025000000000000001"}),
             boost::test_tools::per_element());
  // epochs without a validation report none (no stale value from the epoch before)
  std::int64_t with_val = 0;
  for (const auto& line : lines_of(r.dir / "run/metrics.jsonl")) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("epoch_seconds") && j.contains("val/loss")) ++with_val;
  }
  BOOST_TEST(with_val == 3);
  fs::remove_all(r.dir);
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(a_reused_run_dir_holds_only_the_new_runs_records) {
  const auto dir = graft::test::temp_dir("reuse");
  std::ofstream(dir / "r.yaml") << base_recipe;
  const auto recipe = graft::load_recipe((dir / "r.yaml").string(), {"trainer.epochs=2"});
  graft::TrainOptions options;
  options.run_dir = (dir / "run").string();
  options.progress = false;
  graft::fit(recipe, registry(), options);
  graft::fit(recipe, registry(), options);
  std::int64_t epochs = 0;
  for (const auto& line : lines_of(dir / "run/metrics.jsonl"))
    if (nlohmann::json::parse(line).contains("epoch_seconds")) ++epochs;
  BOOST_TEST(epochs == 2);
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(gradual_unfreezing_adds_its_group_at_the_milestone_epoch) {
  const auto dir = graft::test::temp_dir("unfreeze");
  const auto log = dir / "calls.txt";
  const auto r = fit("model:\n  backbone: {name: mlp, hidden: [64], num_classes: 10}\n"
                     "  freeze: [{name: gradual_unfreeze, frozen: ['1.*'], milestones: [{epoch: 2, unfreeze: ['1.*'], lr: 0.001}]}]\n"
                     "hooks: [{name: record, file: " + log.string() + "}]\n");
  std::vector<std::string> seen;
  for (const auto& l : lines_of(log))
    if (l.rfind("batch_start", 0) == 0 && field(l, "lrs") != (seen.empty() ? "" : seen.back())) seen.push_back(field(l, "lrs"));
  std::vector<std::string> trainable;
  for (const auto& l : lines_of(log))
    if (l.rfind("epoch_start", 0) == 0) trainable.push_back(field(l, "trainable") + "/" + field(l, "groups"));
  BOOST_TEST(trainable == (std::vector<std::string>{"2/1", "2/1", "4/2"}), boost::test_tools::per_element());
  BOOST_TEST(seen.back() == "0.050000000000000003,0.001", seen.back());
  fs::remove_all(r.dir);
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(max_steps_and_hook_requests_stop_the_run) {
  const auto a = fit("", {"trainer.max_steps=7"});
  BOOST_TEST(a.result.steps == 7);
  BOOST_TEST(a.result.stop_reason == "max_steps");
  BOOST_TEST(a.result.epochs == 1);
  const auto dir = graft::test::temp_dir("stop");
  const auto b = fit("hooks: [{name: record, file: " + (dir / "x").string() + ", stop_at_step: 13}]\n");
  BOOST_TEST(b.result.steps == 13);
  BOOST_TEST(b.result.stop_reason == "record hook: stop_at_step");
  BOOST_TEST(b.result.epochs == 2);
  for (const auto& r : {a, b}) fs::remove_all(r.dir);
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(on_fit_start_of_a_resume_sees_where_the_run_goes_on) {
  // stopped after step 13: epoch 1 (0-based), batch 3 of 10; the resume's on_fit_start sees
  // that position, ctx.resuming, and the restored step (graft/hooks.h)
  const auto dir = graft::test::temp_dir("resuming");
  const auto calls = dir / "calls.txt";
  const auto a = fit("hooks: [{name: record, file: " + calls.string() + ", stop_at_step: 13}]\n");
  BOOST_TEST_REQUIRE(a.result.steps == 13);
  const auto recipe = graft::load_recipe(a.recipe_file, {"hooks=[{name: record, file: " + calls.string() + "}]"});
  graft::TrainOptions options;
  options.run_dir = (a.dir / "run").string();
  options.progress = false;
  options.resume = "auto";
  const auto resumed = graft::fit(recipe, registry(), options);
  BOOST_TEST(resumed.steps == 30);
  std::vector<std::string> starts;
  for (const auto& l : lines_of(calls))
    if (l.rfind("fit_start", 0) == 0) starts.push_back(l);
  BOOST_TEST_REQUIRE(starts.size() == 2u);
  BOOST_TEST(starts[0].find("fit_start 0 0 0 ") == 0u, starts[0]);
  BOOST_TEST(!contains(starts[0], "resuming"));
  BOOST_TEST(starts[1].find("fit_start 1 13 3 ") == 0u, starts[1]);
  BOOST_TEST(contains(starts[1], " resuming"), starts[1]);
  fs::remove_all(a.dir);
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(a_hook_that_throws_is_named_with_its_library_and_position) {
  const auto dir = graft::test::temp_dir("throwing_hook");
  const auto calls = dir / "calls.txt";
  std::ofstream(dir / "base.yaml") << base_recipe;
  std::ofstream(dir / "r.yaml") << "base: base.yaml\nhooks: [{name: record, file: " << calls.string()
                                << ", throw_at_step: 12}]\n";
  graft::TrainOptions options;
  options.run_dir = (dir / "run").string();
  options.progress = false;
  const auto e = error_of([&] { graft::fit(graft::load_recipe((dir / "r.yaml").string()), registry(), options); });
  // 10 batches an epoch: step 12 is the second batch of the second epoch
  const std::string line = (dir / "r.yaml").string() +
                           ":2:9: hook 'record' (libgraft_test_hooks.so) failed at epoch 2, batch 2, step 12: disk quota exceeded";
  BOOST_TEST(std::string(e.what()) == line);
  // the line is in the run's train.log, and every hook saw the failure (on_exception)
  BOOST_TEST(contains(slurp(dir / "run/train.log"), "error: " + line), slurp(dir / "run/train.log"));
  BOOST_TEST(contains(slurp(calls), "exception 1 12 1 "), slurp(calls));
  fs::remove_all(dir);
}

// A metric, a scheduler and a transform that throw mid-run: one line naming the plugin, its
// library, its recipe entry and the run's position, in train.log too; hooks see the error.
BOOST_AUTO_TEST_CASE(a_metric_scheduler_or_transform_that_throws_is_named_with_its_position) {
  registry().scan({std::string(GRAFT_FIXTURE_DIR) + "/libgraft_test_throwing.so"});
  const auto dir = graft::test::temp_dir("throwing_plugins");
  const auto calls = dir / "calls.txt";
  std::ofstream(dir / "base.yaml") << base_recipe;
  const auto failure = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << "base: base.yaml\n" << text;
    graft::TrainOptions options;
    options.run_dir = (dir / name).string() + ".run";
    options.progress = false;
    const auto e = error_of([&] { graft::fit(graft::load_recipe((dir / name).string()), registry(), options); });
    BOOST_TEST(contains(slurp(options.run_dir + "/train.log"), std::string("error: ") + e.what()));
    return std::string(e.what());
  };
  // 10 batches an epoch; a metric is updated before the batch's step
  const std::string metric = failure("metric.yaml", "metrics: [accuracy, {name: test_flaky_metric, throw_at_update: 13}]\n"
                                                    "hooks: [{name: record, file: " + calls.string() + "}]\n");
  BOOST_TEST(metric == (dir / "metric.yaml").string() +
                           ":2:21: metric 'test_flaky_metric' (libgraft_test_throwing.so) failed at epoch 2, batch 3, "
                           "step 12: histogram overflow");
  BOOST_TEST(contains(slurp(calls), "exception 1 12 2 "), slurp(calls));
  // a per-step scheduler counts after each step
  const std::string scheduler = failure("scheduler.yaml", "scheduler: {name: test_flaky_scheduler, throw_at_count: 7}\n");
  BOOST_TEST(scheduler == (dir / "scheduler.yaml").string() +
                              ":2:12: scheduler 'test_flaky_scheduler' (libgraft_test_throwing.so) failed at epoch 1, "
                              "batch 7, step 7: schedule table exhausted");
  // a transform runs in the loader: the sample is named too (32 calls a batch, after the
  // one sample data: checks)
  const std::string transform =
      failure("transform.yaml", "data: {transforms: [{name: test_flaky_transform, throw_at_call: 40}, to_tensor]}\n");
  const std::string head = (dir / "transform.yaml").string() +
                           ":2:21: transform 'test_flaky_transform' (libgraft_test_throwing.so) failed at epoch 1, batch 2, "
                           "step 1 on sample ";
  BOOST_TEST(transform.rfind(head, 0) == 0u, transform);
  BOOST_TEST(transform.substr(transform.size() - 11) == ": bad pixel", transform);
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(early_stopping_ends_a_run_that_stopped_improving) {
  // lr 0: the validation loss never improves after the first epoch
  const auto r = fit("hooks: [{name: early_stopping, monitor: val/loss, patience: 1}]\n",
                     {"optimizer.lr=0", "optimizer.momentum=0", "trainer.epochs=10"});
  BOOST_TEST(r.result.epochs == 3);
  BOOST_TEST(contains(r.result.stop_reason, "early_stopping: val/loss did not improve"), r.result.stop_reason);
  // the hook's own state is in the checkpoint, under its position and name
  const auto ckpt = graft::read_torch_file((r.dir / "run/checkpoints/last.pth").string()).toGenericDict();
  const auto state = ckpt.at("hooks").toGenericDict().at("0:early_stopping").toGenericDict();
  BOOST_TEST(state.at("wait").toInt() == 2);
  BOOST_TEST(state.at("best").toDouble() == r.result.metrics.at("val/loss"));
  fs::remove_all(r.dir);
}

// graft logs through a logger of its own: a plugin's line (graft/log.h) and the run's own
// lines reach train.log, and spdlog's default logger (the embedding program's) is neither
// replaced, nor given a sink, nor sent graft's lines.
BOOST_AUTO_TEST_CASE(a_plugins_log_line_reaches_train_log_and_the_programs_logger_is_left_alone) {
  std::ostringstream program_log;
  const auto program = std::make_shared<spdlog::logger>("program", std::make_shared<spdlog::sinks::ostream_sink_mt>(program_log));
  const auto previous = spdlog::default_logger();
  spdlog::set_default_logger(program);
  const auto sinks = program->sinks();
  const auto dir = graft::test::temp_dir("plugin-log");
  const auto r = fit("hooks: [{name: record, file: " + (dir / "calls.txt").string() + ", say: hello from a plugin}]\n",
                     {"trainer.epochs=1"});
  const bool kept = spdlog::default_logger() == program && program->sinks() == sinks;
  spdlog::set_default_logger(previous);
  BOOST_TEST(kept);
  const std::string train_log = slurp(r.dir / "run/train.log");
  BOOST_TEST(contains(train_log, "] info: record hook says: hello from a plugin\n"), train_log);
  BOOST_TEST(contains(train_log, "] info: epoch 1/1 step 5 loss "), train_log);  // the run's periodic lines
  // the epoch's save point and the run's end hold the same state: written (and said) once
  std::size_t saved = 0;
  for (std::size_t at = train_log.find("] info: saved last.pth at step 10 "); at != std::string::npos;
       at = train_log.find("] info: saved last.pth at step 10 ", at + 1))
    ++saved;
  BOOST_TEST(saved == 1u, train_log);
  BOOST_TEST(!contains(program_log.str(), "hello from a plugin"), program_log.str());
  BOOST_TEST(!contains(program_log.str(), "epoch 1/1 step 5"), program_log.str());
  fs::remove_all(r.dir);
  fs::remove_all(dir);
}

// The command line: graft's lines (plugins' included) on stderr from --log-level up, and
// in train.log from info up whatever --log-level says.
BOOST_AUTO_TEST_CASE(the_command_line_logs_to_stderr_at_its_level_and_every_line_to_train_log) {
  const auto dir = graft::test::temp_dir("cli-log");
  const auto recipe = dir / "r.yaml";
  std::ofstream(recipe) << base_recipe << "plugins: [" << GRAFT_FIXTURE_DIR << "/libgraft_test_hooks.so]\n"
                        << "hooks: [{name: record, file: " << (dir / "calls.txt").string() << ", say: hello from a plugin}]\n"
                        << "checkpoint: [{name: best_k, monitor: val/top1}]\n";
  const std::string said = "info: record hook says: hello from a plugin\n";
  const std::string warned = "warning: best_k: 'val/top1' was never computed in this run";
  for (const std::string level : {"info", "warn", "off"}) {
    const auto run_dir = dir / ("run-" + level);
    const auto t = run(std::string(GRAFT_BIN) + " --log-level " + level + " train " + recipe.string() + " --run-dir " +
                       run_dir.string() + " --set trainer.epochs=1 --set trainer.val_every=0 --set trainer.test=false --progress 0");
    BOOST_REQUIRE_MESSAGE(t.code == 0, t.err);
    BOOST_TEST(contains(t.err, said) == (level == "info"), level << ": " << t.err);
    BOOST_TEST(contains(t.err, warned) == (level != "off"), level << ": " << t.err);
    const std::string train_log = slurp(run_dir / "train.log");
    BOOST_TEST(contains(train_log, "] " + said), level << ": " << train_log);
    BOOST_TEST(contains(train_log, "] " + warned), level << ": " << train_log);
  }
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(graft_train_and_eval_from_the_command_line) {
  const auto dir = graft::test::temp_dir("cli");
  const auto recipe = dir / "r.yaml";
  std::ofstream(recipe) << base_recipe;
  const auto t = run(std::string(GRAFT_BIN) + " train " + recipe.string() + " --run-dir " + (dir / "run").string() +
                     " --set trainer.epochs=2 --json");
  BOOST_REQUIRE_MESSAGE(t.code == 0, t.err);
  const auto trained = nlohmann::json::parse(t.out);
  BOOST_TEST(trained["steps"] == 20);
  // --eager runs the model as the training's test pass did: the same numbers; the default
  // (traced, optimized for inference) the same top-1 and a loss within float rounding
  for (const std::string flags : {" --eager", ""}) {
    const auto e = run(std::string(GRAFT_BIN) + " eval " + recipe.string() + " --checkpoint " +
                       (dir / "run/checkpoints/last.pth").string() + " --json" + flags);
    BOOST_REQUIRE_MESSAGE(e.code == 0, e.err);
    const auto j = nlohmann::json::parse(e.out);
    for (const char* k : {"loss", "top1", "top5", "samples"}) BOOST_TEST(j.contains(k), k);
    BOOST_TEST(j["samples"] == 160);
    BOOST_TEST(j["top1"].get<double>() == trained["metrics"]["test/top1"].get<double>());
    BOOST_TEST(j["loss"].get<double>() == trained["metrics"]["test/loss"].get<double>(),
               boost::test_tools::tolerance(flags.empty() ? 1e-5 : 1e-9));
  }
  // a checkpoint of another model is refused in one line
  std::ofstream(dir / "other.yaml") << "base: r.yaml\nmodel: {backbone: {name: mlp, hidden: [32], num_classes: 10}}\n";
  const auto bad = run(std::string(GRAFT_BIN) + " eval " + (dir / "other.yaml").string() + " --checkpoint " +
                       (dir / "run/checkpoints/last.pth").string());
  BOOST_TEST(bad.code == 2);
  BOOST_TEST(contains(bad.err, "does not fit the recipe's model"), bad.err);
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(trainer_errors_are_located_usage_errors) {
  const auto dir = graft::test::temp_dir("errors");
  const auto recipe = dir / "r.yaml";
  std::ofstream(recipe) << base_recipe;
  auto err = [&](const std::string& set) {
    const auto r = run(std::string(GRAFT_BIN) + " train " + recipe.string() + " --run-dir " + (dir / "run").string() + " --set " + set);
    BOOST_TEST(r.code == 2, set << ": " << r.err);
    return r.err;
  };
  BOOST_TEST(contains(err("trainer.epochs=0"), "trainer.epochs: must be >= 1"));
  BOOST_TEST(contains(err("trainer.epoch=3"), "did you mean 'epochs'"));
  BOOST_TEST(contains(err("trainer.device=cuda"), "trainer.device: 'cuda' asked for"));
  BOOST_TEST(contains(err("trainer.device=tpu"), "expected cpu, cuda, cuda:N, auto"));
  BOOST_TEST(contains(err("trainer.amp=bf16"), "mixed precision needs a CUDA device"));
  BOOST_TEST(contains(err("scheduler.name=cosine_warm"), "scheduler"));
  BOOST_TEST(contains(err("trainer.clip_grad_norm=-1"), "trainer.clip_grad_norm: must be > 0"));
  BOOST_TEST(contains(err("'scheduler={name: reduce_on_plateau}' --set data.val=none"), "but the run does not validate"));
  BOOST_TEST(contains(err("'scheduler={name: reduce_on_plateau, interval: step}'"), "use interval: epoch"));
  // recipe errors come before anything is written
  BOOST_TEST(!fs::exists(dir / "run"));
  fs::remove_all(dir);
}
