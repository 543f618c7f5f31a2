#include "checkpoint_saver.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "graft/error.h"
#include "graft/log.h"
#include "train/run_report.h"

namespace fs = std::filesystem;

namespace graft::train {

std::string CheckpointSaver::save(TrainContext& ctx, SavePoint at, const std::function<c10::IValue()>& make) {
  // ranks in trouble take no part in collectives: a failing run's save is rank 0's own
  if (sync_.active() && at == SavePoint::exception) {
    if (writes_ && sync_.leader()) log::warn("no checkpoint of the failing run: a multi-process run goes on from its last periodic checkpoint");
    return {};
  }
  if (!writes_ && !sync_.active()) return {};
  std::vector<std::string> names;
  static const std::vector<std::shared_ptr<CheckpointStrategy>> none;
  for (const auto& st : writes_ ? callbacks_.strategies() : none)
    for (const auto& n : st->files_to_save(ctx, at)) {
      if (n.empty() || n[0] == '.' || n.find('/') != std::string::npos || fs::path(n).extension() != ".pth")
        throw Error::usage(fmt::format("a checkpoint strategy asked for the file '{}': expected a plain name ending in .pth", n));
      if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
    }
  // the end of a run right after the epoch's save point (nothing ran in between): those
  // files hold this state already
  if (at == SavePoint::end && last_at_ == SavePoint::epoch && ctx.step == last_step_)
    names.erase(std::remove_if(names.begin(), names.end(),
                               [&](const std::string& n) { return std::find(last_names_.begin(), last_names_.end(), n) != last_names_.end(); }),
                names.end());
  sync_.agree(names, ctx);  // also without a run dir: the ranks agree on a stop
  if (!writes_ || names.empty()) return {};
  const auto t0 = std::chrono::steady_clock::now();
  const c10::IValue value = make();
  if (!sync_.leader()) {
    const std::string path = sync_.outcome("", "");
    last_step_ = ctx.step;
    last_at_ = at;
    last_names_ = names;
    return path;
  }
  std::vector<std::string> paths;
  try {
    paths = out_.write_checkpoint(names, value.toGenericDict());
  } catch (const std::exception& e) {
    sync_.outcome("", e.what());  // throws, on every rank
  }
  sync_.outcome(paths.front(), "");
  last_step_ = ctx.step;
  last_at_ = at;
  last_names_ = names;
  std::error_code ec;
  log::info("saved {} at step {} ({:.1f} MB in {:.2f} s)", fmt::join(names, ", "), ctx.step,
            static_cast<double>(fs::file_size(paths.front(), ec)) / 1e6,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  if (auto* report = out_.report()) report->checkpoint(names, ctx.epoch + 1, ctx.step, ctx.metrics);
  const auto existing = out_.list_checkpoints();
  for (const auto& st : callbacks_.strategies())
    for (const auto& n : st->files_to_remove(ctx, existing, names))
      if (std::find(names.begin(), names.end(), n) == names.end() &&
          std::find(existing.begin(), existing.end(), n) != existing.end())
        out_.remove_checkpoint(n);
  return paths.front();
}

}  // namespace graft::train
