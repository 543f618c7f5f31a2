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
  if (out_.dir().empty()) return {};
  std::vector<std::string> names;
  for (const auto& st : callbacks_.strategies())
    for (const auto& n : st->files_to_save(ctx, at)) {
      if (n.empty() || n[0] == '.' || n.find('/') != std::string::npos || fs::path(n).extension() != ".pth")
        throw Error::usage(fmt::format("a checkpoint strategy asked for the file '{}': expected a plain name ending in .pth", n));
      if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
    }
  if (names.empty()) return {};
  const auto t0 = std::chrono::steady_clock::now();
  const auto paths = out_.write_checkpoint(names, make().toGenericDict());
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
