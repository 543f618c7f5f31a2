#include "train_loop.h"

#include <cmath>

#include <fmt/format.h>
#include <torch/torch.h>

#include "graft/error.h"
#include "train/run_report.h"

namespace graft::train {

double TrainLoop::lr() const {
  auto& opt = u_.trainable.optimizer();
  return opt.group_count() == 0 ? 0.0 : opt.lr(0);
}

void TrainLoop::save(SavePoint at, std::int64_t epoch, std::int64_t batch) {
  const std::string path = u_.saver.save(u_.ctx, at, [&] { return u_.checkpoint(at, epoch, batch); });
  if (!path.empty()) last_checkpoint_ = path;
}

LoopEnd TrainLoop::run(std::int64_t start_epoch, std::int64_t start_batch, bool resumed, std::int64_t start_sample) {
  try {
    return epochs(start_epoch, start_batch, resumed, start_sample);
  } catch (const PluginFailure& f) {
    // a transform, metric, loss or scheduler: named where it threw, placed here
    if (f.placed()) throw;
    throw f.within(position_text(u_.ctx));
  }
}

LoopEnd TrainLoop::epochs(std::int64_t start_epoch, std::int64_t start_batch, bool resumed, std::int64_t start_sample) {
  auto& ctx = u_.ctx;
  auto& model = u_.session.model();
  const Settings& settings = u_.session.settings;
  const std::int64_t batches = u_.loader.batches_per_epoch();
  LoopEnd end;
  end.epochs = start_epoch;  // a finished run resumed: nothing more to train
  end.end_epoch = start_epoch;
  end.end_batch = start_batch;
  bool done = false;
  for (std::int64_t epoch = start_epoch; epoch < planned_epochs_ && !done; ++epoch) {
    const bool mid_epoch = resumed && epoch == start_epoch && start_batch > 0;
    std::int64_t first_batch = mid_epoch ? start_batch : 0;
    ctx.epoch = epoch;
    end.epochs = epoch + 1;
    if (epoch > 0 && u_.trainable.scheduled() && !mid_epoch && u_.trainable.advance(epoch, ctx.step)) {
      u_.session.execution().after_update();
      u_.schedule.apply(u_.trainable.optimizer(), u_.trainable.groups());
    }
    model.train();
    u_.trainable.apply();
    if (!mid_epoch) {
      // last epoch's validation values are not this epoch's
      for (auto it = ctx.metrics.begin(); it != ctx.metrics.end();)
        it = it->first.rfind("val/", 0) == 0 ? ctx.metrics.erase(it) : std::next(it);
      u_.sums = EpochSums{};
      for (auto& m : u_.metrics) m->reset();
      u_.callbacks.each([&](Hook& h) { h.on_epoch_start(ctx); });
    }
    if (mid_epoch && start_sample >= 0) first_batch = u_.loader.start_at_sample(epoch, start_sample);
    else u_.loader.start(epoch, first_batch);
    u_.logger.epoch_start(first_batch);
    u_.optimizer_step.epoch_start(u_.trainable.optimizer());
    bool complete = true;
    std::int64_t next_batch = first_batch;
    for (std::int64_t b = first_batch; b < batches; ++b) {
      ctx.batch = b;  // (an error of the batch's transforms names it)
      auto data = u_.loader.next();
      if (!data) break;
      next_batch = b + 1;
      if (!batch(epoch, b, *data, end, complete)) {
        done = true;
        break;
      }
    }
    u_.logger.end_progress();
    if (end.interrupted) return end;
    end.end_epoch = complete ? epoch + 1 : epoch;
    end.end_batch = complete ? 0 : next_batch;
    {
      const GroupTotals totals(u_.session.sync, u_.metrics, u_.sums);  // the epoch over every rank
      for (auto& m : u_.metrics)
        for (const auto& [k, v] : m->compute()) ctx.metrics["train/" + k] = v;
      if (u_.sums.seen > 0) ctx.metrics["train/loss"] = u_.sums.loss_sum / static_cast<double>(u_.sums.seen);
    }
    if (u_.session.data.val && settings.val_every > 0 &&
        ((epoch + 1) % settings.val_every == 0 || epoch + 1 == planned_epochs_ || done))
      validate();
    u_.logger.epoch_end(epoch, ctx.step, lr(), ctx.metrics);
    u_.callbacks.each([&](Hook& h) { h.on_epoch_end(ctx); });
    if (!u_.schedule.per_step()) u_.schedule.advance(ctx.metrics, u_.trainable.optimizer(), u_.trainable.groups());
    if (complete) {
      save(SavePoint::epoch, epoch + 1, 0);  // (in a multi-process run, the ranks agree on a stop here)
      if (ctx.exit_code != 0) {
        end.interrupted = true;
        return end;
      }
    }
    if (ctx.stop_requested && !done) {
      end.stop_reason = ctx.stop_reason.empty() ? "a hook asked to stop" : ctx.stop_reason;
      done = true;
    }
  }
  return end;
}

bool TrainLoop::batch(std::int64_t epoch, std::int64_t b, Batch& data, LoopEnd& end, bool& complete) {
  auto& ctx = u_.ctx;
  auto& exec = u_.session.execution();
  const Settings& settings = u_.session.settings;
  const std::int64_t batches = u_.loader.batches_per_epoch();
  ctx.batch = b;
  ctx.inputs = exec.to_device(data.inputs);
  ctx.targets = exec.to_device(data.targets);
  u_.callbacks.each([&](Hook& h) { h.on_batch_start(ctx); });
  ctx.output = exec.forward(ctx.inputs);
  {
    AutocastScope scope(settings.amp);
    ctx.loss = u_.session.loss->forward(ctx.output.to(torch::kFloat), ctx.targets);
  }
  ctx.loss_value = ctx.loss.item<double>();
  if (settings.stop_on_nan && !std::isfinite(ctx.loss_value))
    throw Error::runtime(fmt::format(
        "non-finite loss ({}) at epoch {}, batch {}, after {} optimizer steps: training stopped; nothing of this "
        "step was applied (lower the learning rate, or set trainer.clip_grad_norm)",
        ctx.loss_value, epoch + 1, b + 1, ctx.step));
  u_.callbacks.each([&](Hook& h) { h.on_after_forward(ctx); });
  const std::int64_t n = ctx.targets.size(0);
  u_.sums.loss_sum += ctx.loss_value * static_cast<double>(n);
  u_.sums.seen += n;
  u_.logger.batch(n);
  {
    torch::NoGradGuard no_grad;
    for (auto& m : u_.metrics) m->update(ctx.output.detach(), ctx.targets);
  }
  if (u_.optimizer_step.backward(ctx, b)) {
    u_.optimizer_step.step(ctx, u_.trainable);
    if (u_.schedule.per_step()) u_.schedule.advance(ctx.metrics, u_.trainable.optimizer(), u_.trainable.groups());
    u_.logger.step(epoch, ctx.step, ctx.loss_value, lr());
  }
  ctx.metrics["train/loss"] = u_.sums.loss_sum / static_cast<double>(u_.sums.seen);
  ctx.metrics["lr"] = lr();
  u_.callbacks.each([&](Hook& h) { h.on_batch_end(ctx); });
  u_.logger.progress(epoch, b, batches, ctx.metrics["train/loss"]);
  const bool group_end = u_.optimizer_step.at_group_end();
  if (group_end) {
    save(SavePoint::step, epoch, b + 1);
    if (ctx.exit_code != 0) {
      end.interrupted = true;
      return false;
    }
  }
  if (settings.max_steps > 0 && ctx.step >= settings.max_steps && group_end) {
    end.stop_reason = "max_steps";
    complete = b + 1 == batches;
    return false;
  }
  // a multi-process run stops where its ranks agreed (at a group's end, in save())
  if (ctx.stop_requested && (group_end || !u_.session.sync.active())) {
    end.stop_reason = ctx.stop_reason.empty() ? "a hook asked to stop" : ctx.stop_reason;
    complete = b + 1 == batches;
    return false;
  }
  return true;
}

void TrainLoop::validate() {
  auto& ctx = u_.ctx;
  ctx.inputs = ctx.targets = ctx.output = ctx.loss = torch::Tensor();
  u_.callbacks.each([&](Hook& h) { h.on_validation_start(ctx); });
  const PassResult v = u_.session.evaluate_pass(u_.session.data.val, "val");
  if (auto* report = u_.logger.output().report())
    report->evaluated("val", evaluation_json(v, *u_.session.data.val, u_.session.data.classes, ctx.epoch + 1));
  u_.trainable.apply();
  for (const auto& [k, val] : v.metrics) ctx.metrics["val/" + k] = val;
  u_.callbacks.each([&](Hook& h) { h.on_validation_end(ctx); });
}

}  // namespace graft::train
