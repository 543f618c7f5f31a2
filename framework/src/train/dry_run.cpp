// graft check's dry run (graft/host/check.h): the first step of a run on parts of its own.
#include <chrono>
#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "callbacks.h"
#include "graft/error.h"
#include "graft/host/check.h"
#include "graft/host/serialize.h"
#include "graft/host/watch.h"
#include "graft/log.h"
#include "loss_scaler.h"
#include "schedule_driver.h"
#include "session.h"
#include "train_state.h"
#include "trainable_set.h"

namespace graft {

using namespace train;

namespace {

std::string shape_text(at::IntArrayRef s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// The exception in flight, as one line (a graft::Error's own message, without its place).
std::string what_of_current() {
  try {
    throw;
  } catch (const Error& e) {
    return e.where().known() ? e.what() : e.message();
  } catch (const c10::Error& e) {
    return first_line(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return first_line(e.what());
  }
}

// Torch's CPU generator as it was when this was made, again when it goes.
class KeepCpuRng {
 public:
  KeepCpuRng() : state_(at::detail::getDefaultCPUGenerator().get_state()) {}
  ~KeepCpuRng() {
    at::Generator cpu = at::detail::getDefaultCPUGenerator();
    cpu.set_state(state_);
  }
  KeepCpuRng(const KeepCpuRng&) = delete;
  KeepCpuRng& operator=(const KeepCpuRng&) = delete;

 private:
  at::Tensor state_;
};

// The model's forward of `x`; what it throws names the module at fault and what went in.
torch::Tensor forward(Session& s, const torch::Tensor& x, const Config& model_key, const char* pass) {
  FailureProbe probe(s.model());
  try {
    return s.execution().forward(x);
  } catch (...) {
    const std::string what = what_of_current();
    throw Error::usage(fmt::format("model: {} batch of {} does not go through the model{}: {}", pass, shape_text(x.sizes()),
                                   probe.where().empty() ? "" : " at " + probe.where(), what),
                       model_key.where());
  }
}

// One batch of `split` through `transforms`: what the dataset or a transform throws is
// one line naming the dataset entry (a transform names itself).
Batch first_batch(const std::shared_ptr<Dataset>& split, const std::vector<std::shared_ptr<Transform>>& transforms,
                  LoaderOptions options, std::int64_t max_batch, const Config& data_key, const char* name) {
  options.batch_size = std::min(options.batch_size, max_batch);
  options.workers = 0;  // in this thread: one batch
  options.drop_last = false;
  Loader loader(split, transforms, options);
  loader.start(0);
  try {
    auto batch = loader.next();
    if (!batch) data_key.fail(std::string("the ") + name + " split has no sample");
    return *batch;
  } catch (const PluginFailure&) {
    throw;
  } catch (const Error& e) {
    if (e.where().known()) throw;
    throw Error(e.kind(), std::string("the first batch of the ") + name + " split: " + e.message(), data_key["dataset"].where());
  } catch (...) {
    throw Error::runtime(std::string("the first batch of the ") + name + " split: " + what_of_current(),
                         data_key["dataset"].where());
  }
}

}  // namespace

DryRun dry_run(const Recipe& recipe, const Registry& registry, const DryRunOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  const KeepCpuRng keep_rng;
  const Plan used = check_recipe(recipe, registry);
  Recipe r = recipe;
  if (!options.weights) r.root = merge(recipe.root, parse_yaml_text("model: {weights: ~}", "dry run"));
  DryRun out;
  Session s(r, registry);
  // one device (no replicas, no group): this rank's
  if (options.local_rank >= 0 && s.settings.devices.main.is_cuda())
    s.settings.devices.main = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(options.local_rank));
  s.settings.devices.all = {s.settings.devices.main};
  const bool has_data = !r.root["data"].is_null();
  s.build();
  auto& model = s.model();
  const Config model_key = r.root["model"]["backbone"];
  std::unique_ptr<TrainableSet> trainable;
  if (!r.root["optimizer"].is_null()) trainable = std::make_unique<TrainableSet>(r, registry, model);
  ScheduleDriver schedule(r, registry, s.settings);
  Callbacks callbacks(r, registry);
  auto train_metrics = make_metrics(r, registry);
  s.start_execution();

  if (!has_data) {  // a model alone: built, and no step to run (nothing says what goes in)
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return out;
  }
  const Batch b = first_batch(s.data.train, s.data.train_transforms, s.data.train_options, options.max_batch, r.root["data"],
                              "training");
  const torch::Tensor& x = b.inputs;
  const torch::Tensor& y = b.targets;
  const std::int64_t batches = Loader(s.data.train, s.data.train_transforms, s.data.train_options).batches_per_epoch();
  out.classes = static_cast<std::int64_t>(s.data.classes.size());
  out.input_shape = x.sizes().vec();
  model.train();
  if (trainable) trainable->apply();
  const torch::Tensor output = forward(s, s.execution().to_device(x), model_key, "a training");
  out.output_shape = output.sizes().vec();
  if (output.dim() != 2)
    throw Error::usage(fmt::format("model: gives {} for a batch of {}; a classifier gives [batch, classes]",
                                   shape_text(output.sizes()), shape_text(x.sizes())),
                       model_key.where());
  const std::int64_t outputs = output.size(1);
  if (outputs < out.classes)
    throw Error::usage(fmt::format("model: gives {} outputs, but the data has {} classes: the targets {}..{} are no output "
                                   "of the model (set the head's size to {}, e.g. num_classes or out_features)",
                                   outputs, out.classes, outputs, out.classes - 1, out.classes),
                       model_key.where());
  if (outputs > out.classes) {
    out.warnings.push_back(fmt::format("the model gives {} outputs for the data's {} classes: outputs {}..{} are never a target",
                                       outputs, out.classes, out.classes, outputs - 1));
    log::warn("{}", out.warnings.back());
  }
  // the loss and the metrics of the batch, backward, one optimizer and scheduler step
  const torch::Tensor target = s.execution().to_device(y);
  torch::Tensor loss;
  {
    AutocastScope scope(s.settings.amp);
    loss = s.loss->forward(output.to(torch::kFloat), target);
  }
  out.loss = loss.item<double>();
  if (s.settings.stop_on_nan && !std::isfinite(out.loss))
    throw Error::runtime(fmt::format("the loss of the first batch is {} before any step: the model or the data give "
                                     "non-finite values",
                                     out.loss),
                         r.root["data"]["dataset"].where());
  TrainContext ctx;
  ctx.model = &model;
  ctx.batches_per_epoch = batches;
  ctx.loss_value = out.loss;
  {
    torch::NoGradGuard no_grad;
    for (auto& m : train_metrics) {
      m->reset();
      m->update(output.detach(), target);
    }
  }
  ctx.metrics["train/loss"] = out.loss;
  for (auto& m : train_metrics)
    for (const auto& [k, v] : m->compute()) ctx.metrics["train/" + k] = ctx.metrics["val/" + k] = v;
  ctx.metrics["val/loss"] = out.loss;  // what a monitor of the first validation reads
  if (trainable) {
    try {
      loss.backward();
    } catch (...) {
      throw Error::runtime("backward of the first batch: " + what_of_current(), model_key.where());
    }
    Optimizer& optimizer = trainable->optimizer();
    ctx.optimizer = &optimizer;
    call_plugin(trainable->who(), trainable->where(), nullptr, [&] { optimizer.step(); });
    optimizer.zero_grad();
    ctx.step = 1;
    out.stepped = true;
    schedule.setup(batches, batches, 1);
    schedule.apply(optimizer, trainable->groups());
    schedule.advance(ctx.metrics, optimizer, trainable->groups());
    ctx.metrics["lr"] = optimizer.group_count() ? optimizer.lr(0) : 0.0;
    // the checkpoint a run writes here, in memory, and read back as one
    LossScaler scaler(s.settings.amp.scaling);
    EpochSums sums{out.loss * static_cast<double>(y.size(0)), y.size(0)};
    RunParts parts{model, *trainable, schedule, callbacks, metric_states(train_metrics), scaler, ctx, sums, s.data.classes,
                   s.data.sample_shape};
    SavePosition at{SavePoint::step, 0, 1, batches, 0.0};
    at.batch_size = s.data.train_options.batch_size;
    const c10::IValue state = write_checkpoint(parts, at, r, used);
    out.state_bytes = torch_file_bytes(state, "the dry run's checkpoint").size();
    Checkpoint::from("the dry run's checkpoint", state);
  }

  // a batch of the evaluation transforms through the model in eval mode
  if (const auto& eval = s.data.val ? s.data.val : s.data.test) {
    const Batch b = first_batch(eval, s.data.eval_transforms, s.data.eval_options, options.max_batch, r.root["data"],
                                s.data.val ? "validation" : "test");
    torch::NoGradGuard no_grad;
    model.eval();
    forward(s, s.execution().to_device(b.inputs), model_key, "an evaluation");
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return out;
}

}  // namespace graft
