// fit() and evaluate(): orchestration of the trainer's units. What each unit does is in
// its own file of this folder: settings (the trainer: section), session (model, data,
// execution), trainable_set (freezing, the optimizer), schedule_driver, callbacks (hooks
// and checkpoint strategies), optimizer_step (accumulation, loss scaling, clipping),
// train_state (the checkpoint layout), checkpoint_saver, step_logger and train_loop.
#include <chrono>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "callbacks.h"
#include "checkpoint_saver.h"
#include "graft/error.h"
#include "graft/log.h"
#include "graft/host/check.h"
#include "graft/host/script.h"
#include "graft/host/serialize.h"
#include "graft/host/trainer.h"
#include "graft/host/weights.h"
#include "loss_scaler.h"
#include "optimizer_step.h"
#include "resume.h"
#include "train/run_output.h"
#include "train/run_report.h"
#include "schedule_driver.h"
#include "group_sync.h"
#include "session.h"
#include "step_logger.h"
#include "train_loop.h"
#include "train_state.h"
#include "trainable_set.h"

namespace fs = std::filesystem;

namespace graft {

using namespace train;

namespace {

void load_weights_only(torch::nn::Module& model, const std::string& path) {
  if (!fs::exists(path)) throw Error::usage("--resume-weights-only " + path + ": no such file");
  const LoadReport r = load_weights(model, load_state_dict(path), /*strict=*/false, path);
  if (r.loaded.empty()) throw Error::usage(fmt::format("{}: no weight fits the recipe's model: {}", path, r.summary()));
  log::info("weights from {} (a new run, nothing else of that run): {}", path, r.summary());
}

}  // namespace

FitResult fit(const Recipe& recipe, const Registry& registry, const TrainOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  const Plan used = check_recipe(recipe, registry);
  if (recipe.root["data"].is_null()) recipe.root.fail("a recipe to train needs a data: section");
  if (recipe.root["optimizer"].is_null()) recipe.root.fail("a recipe to train needs an optimizer: section");
  if (!options.resume.empty() && !options.resume_weights_only.empty())
    throw Error::usage("--resume and --resume-weights-only exclude each other: one goes on with a run, the other starts a new one");
  if (options.dry_run) {
    // what would fail in the first step fails here, before anything is written; the
    // weights are the run's own build's to load
    DryRunOptions dry;
    dry.weights = false;
    if (options.dist && options.dist->distributed()) dry.local_rank = options.dist->local_rank;
    const DryRun d = dry_run(recipe, registry, dry);
    log::info("dry run: a batch of {} gave {}, loss {:.4f}, one step; its checkpoint {:.1f} MB ({:.2f} s)",
              fmt::join(d.input_shape, "x"), fmt::join(d.output_shape, "x"), d.loss, static_cast<double>(d.state_bytes) / 1e6,
              d.seconds);
  }
  Session s(recipe, registry);
  const Settings& st = s.settings;
  if (options.dist && options.dist->distributed()) s.join(*options.dist);  // first: every rank reads the same recipe
  const GroupSync& sync = s.sync;
  ScheduleDriver schedule(recipe, registry, st);
  Callbacks callbacks(recipe, registry);

  // which checkpoint to resume from: found before anything is written
  FitResult result;
  ResumePoint resume = find_resume_in_group(sync, recipe, options, options.run_dir.empty() ? st.run_dir : options.run_dir);
  const auto& from = resume.from;
  if (from) {
    result.resumed_from = from->path();
    // the checkpoint holds every weight: the pretrained source is not read again
    s.recipe.root = merge(recipe.root, parse_yaml_text("model: {weights: ~}", "--resume"));
  }
  // rank 0 owns the run dir's files
  RunOutput out(options.write_run_dir && sync.leader() ? (resume.run_dir.empty() ? default_run_dir(recipe) : resume.run_dir) : "",
                options.progress, from ? from->step() : -1);
  result.run_dir = out.dir();
  out.write_text("recipe.yaml", "# resolved from " + recipe.file + "\n" + recipe.root.to_yaml());
  log::info("run dir {}", out.dir().empty() ? "(none)" : out.dir());

  s.build();
  auto& model = s.model();
  if (s.built.weights) log::info("weights: {}: {}", s.built.weights->file, s.built.weights->summary());
  for (const auto& line : s.built.changes) log::info("model: {}", line);
  log::info("data: {}", s.data.description);
  if (!options.resume_weights_only.empty()) load_weights_only(model, options.resume_weights_only);
  TrainableSet trainable(recipe, registry, model);
  s.start_execution();
  log::info("device {}, {} CPU threads{}", s.execution().describe(), torch::get_num_threads(),
            st.amp.on ? (st.amp.scaling ? ", amp fp16" : ", amp bf16") : "");
  RunReport* report = out.report();
  if (report) report->model(s.built);

  Loader loader(s.data.train, s.data.train_transforms, s.data.train_options);
  const std::int64_t batches = loader.batches_per_epoch();
  if (batches == 0) recipe.root["data"].fail("the training split gives no batch (fewer samples than batch_size with drop_last)");
  const std::int64_t steps_per_epoch = (batches + st.accumulate - 1) / st.accumulate;
  const std::int64_t planned_steps =
      st.max_steps > 0 ? std::min(st.max_steps, st.epochs * steps_per_epoch) : st.epochs * steps_per_epoch;
  const std::int64_t planned_epochs = (planned_steps + steps_per_epoch - 1) / steps_per_epoch;
  // a checkpoint of another world size or batch size: the rest of its epoch is dealt anew
  const std::int64_t batch_size = s.data.train_options.batch_size;
  const bool reshaped = from && from->samples() >= 0 && (from->world() != sync.world() || from->batch_size() != batch_size);
  const bool resplit = reshaped && from->batch() > 0;
  if (reshaped) {
    log::info("{} was written by {} rank(s) of batch {}; this run has {} of batch {}: it goes on from sample {} of epoch {}, "
              "the rest of the epoch re-split over {} rank(s)",
              from->path(), from->world(), from->batch_size(), sync.world(), batch_size, from->samples(), from->epoch() + 1,
              sync.world());
    if (from->world() * from->batch_size() != sync.world() * batch_size)
      log::warn("the global batch changes from {} to {} samples per step (the learning rate is not rescaled)",
                from->world() * from->batch_size(), sync.world() * batch_size);
  }
  if (from && !resplit && from->batch() > batches)
    throw Error::usage(fmt::format("{}: saved at batch {} of an epoch, but an epoch now has {} batches (data or batch_size changed)",
                                   from->path(), from->batch(), batches));
  schedule.setup(steps_per_epoch, planned_steps, planned_epochs);
  if (report) report->started(recipe.file, planned_epochs, s.data.classes, s.execution().describe());
  schedule.apply(trainable.optimizer(), trainable.groups());

  TrainContext ctx;
  callbacks.bind(&ctx);
  ctx.model = &model;
  ctx.optimizer = &trainable.optimizer();
  ctx.max_epochs = planned_epochs;
  ctx.max_steps = st.max_steps;
  ctx.batches_per_epoch = batches;
  ctx.run_dir = out.dir();
  ctx.rank = sync.rank();
  ctx.world = sync.world();
  LossScaler scaler(st.amp.scaling);
  EpochSums sums;
  auto train_metrics = make_metrics(recipe, registry);
  RunParts parts{model,     trainable, schedule, callbacks, metric_states(train_metrics), scaler, ctx, sums, s.data.classes,
                 s.data.sample_shape};

  double seconds_before = 0;  // training time of the runs this one resumes
  if (from) {
    // the optimizer gets the groups it had at the checkpoint: unfreezing replayed
    const std::int64_t last_started = from->batch() > 0 ? from->epoch() : from->epoch() - 1;
    for (std::int64_t e = 1; e <= std::min(last_started, planned_epochs - 1); ++e)
      if (trainable.scheduled()) trainable.advance(e, e * steps_per_epoch);
    seconds_before = from->restore(parts);
    if (!sync.leader()) {  // rank 0 holds the group's running sums of the epoch; the others start anew
      sums = EpochSums{};
      for (auto& m : train_metrics) m->reset();
    }
    s.execution().after_load();
    schedule.apply(trainable.optimizer(), trainable.groups());
    log::info("resumed from {}: epoch {}, batch {}/{}, step {}", from->path(), from->epoch() + 1, from->batch(), batches,
              from->step());
    // where the run goes on, as hooks see it in on_fit_start (graft/hooks.h)
    ctx.resuming = true;
    ctx.epoch = from->epoch();
    ctx.batch = from->batch();
  }

  StepLogger logger(out, st.log_every, planned_epochs, seconds_before, started);
  OptimizerStep optimizer_step(st, batches, s.execution(), scaler, callbacks);
  CheckpointSaver saver(out, callbacks, sync, options.write_run_dir);
  auto checkpoint = [&](SavePoint at, std::int64_t epoch, std::int64_t batch) {
    const GroupTotals totals(sync, train_metrics, sums);  // the epoch's sums of every rank
    SavePosition pos{at, epoch, batch, batches, logger.seconds()};
    pos.samples = batch == 0 ? 0 : loader.samples_done(batch - 1);
    pos.world = sync.world();
    pos.batch_size = batch_size;
    return write_checkpoint(parts, pos, recipe, used);
  };
  TrainLoop loop(LoopUnits{s, trainable, schedule, callbacks, optimizer_step, saver, logger, loader, train_metrics, ctx, sums,
                           checkpoint},
                 planned_epochs);

  try {
    callbacks.each([&](Hook& h) { h.on_fit_start(ctx); });
    if (from) {
      from->restore_rng();
      resume.from->release();  // all of it is in the run's state now: free its tensors
    }
    const LoopEnd end = loop.run(from ? from->epoch() : 0, from ? from->batch() : 0, from.has_value(),
                                 resplit ? from->samples() : -1);
    result.epochs = end.epochs;
    result.steps = ctx.step;
    result.metrics = ctx.metrics;
    result.checkpoint = loop.last_checkpoint();
    if (end.interrupted) {
      result.stop_reason = ctx.stop_reason;
      result.exit_code = ctx.exit_code;
      result.seconds = logger.seconds();
      if (report) report->end("interrupted", ctx.stop_reason, "", ctx.step, result.seconds);
      log::warn("{} at epoch {}, step {}: saved {}; go on with `graft train {} --resume auto{}` (exit code {})",
                ctx.stop_reason, ctx.epoch + 1, ctx.step, result.checkpoint.empty() ? "nothing" : result.checkpoint,
                recipe.file, out.dir().empty() ? "" : " --run-dir " + out.dir(), ctx.exit_code);
      sync.barrier("the end of the run");
      return result;
    }
    result.stop_reason = !end.stop_reason.empty()                           ? end.stop_reason
                         : st.max_steps > 0 && ctx.step >= st.max_steps ? "max_steps"
                                                                          : "epochs";
    loop.save(SavePoint::end, end.end_epoch, end.end_batch);
    result.checkpoint = loop.last_checkpoint();
    if (st.test && s.data.test) {
      result.test = s.evaluate_pass(s.data.test, "test", report_metrics(registry));
      if (report) report->evaluated("test", evaluation_json(*result.test, *s.data.test, s.data.classes, end.epochs));
      for (const auto& [k, v] : result.test->metrics) result.metrics["test/" + k] = v;
    }
    callbacks.each([&](Hook& h) { h.on_fit_end(ctx); });
  } catch (const std::exception& e) {
    logger.end_progress();
    // the run's own record of why it ended (graft's main prints the same line on stderr)
    const std::string what = e.what();
    out.log_to_file(log::Level::error, what.substr(0, what.find('\n')));
    if (sync.active()) sync.group()->announce_failure(what.substr(0, what.find('\n')));
    callbacks.exception(ctx, e);
    if (report) {
      try {
        report->end("failed", "error", e.what(), ctx.step, logger.seconds());
      } catch (const std::exception& again) {
        log::error("no report of the failing run: {}", again.what());
      }
    }
    try {
      loop.save(SavePoint::exception, ctx.epoch, ctx.batch);
    } catch (const std::exception& again) {
      log::error("no checkpoint of the failing run: {}", again.what());
    }
    throw;
  }
  result.seconds = logger.seconds();
  if (sync.active())
    log::info("waited {:.4f} s of {:.4f} s for other ranks' gradients (all-reduce not hidden behind backward)",
              s.execution().waited_seconds(), result.seconds);
  sync.barrier("the end of the run");
  if (sync.leader()) out.final_report(recipe.file, result);
  if (report) report->end("finished", result.stop_reason, "", result.steps, result.seconds);
  return result;
}

PassResult evaluate(const Recipe& recipe, const Registry& registry, const std::string& checkpoint, const EvalOptions& options) {
  check_recipe(recipe, registry);
  if (recipe.root["data"].is_null()) recipe.root.fail("a recipe to evaluate needs a data: section");
  const std::string& split = options.split;
  if (split != "test" && split != "val" && split != "train")
    throw Error::usage("--split: expected train, val or test, got '" + split + "'");
  // The checkpoint holds every weight: the recipe's pretrained source is not needed.
  Recipe bare = recipe;
  bare.root = merge(expand_pretrained_transforms(recipe.root), parse_yaml_text("model: {weights: ~}", "graft eval"));
  Session s(bare, registry);
  s.build(split);
  // the same matching as pretrained weights (legacy key forms, BatchNorm counters); any
  // key left over means the checkpoint belongs to another model
  const LoadReport matched = load_weights(s.model(), load_state_dict(checkpoint), /*strict=*/false, checkpoint);
  if (!matched.clean()) throw Error::usage(fmt::format("{}: does not fit the recipe's model: {}", checkpoint, matched.summary()));
  s.start_execution();
  const std::shared_ptr<Dataset> data = split == "val" ? s.data.val : split == "train" ? s.data.train : s.data.test;
  if (!data) throw Error::usage("the recipe has no " + split + " split to evaluate");
  std::function<torch::Tensor(const torch::Tensor&)> forward;
  if (!options.eager && s.settings.devices.main.is_cpu() && s.settings.devices.all.size() <= 1) {
    auto script = std::make_shared<ScriptModel>(ScriptModel::trace(s.built.module, s.data.sample_shape));
    script->optimize();
    forward = [script](const torch::Tensor& x) { return script->forward(x); };
  }
  return s.evaluate_pass(data, split, report_metrics(registry), forward);
}

}  // namespace graft
