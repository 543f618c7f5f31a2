#include "resume.h"

#include <ctime>
#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "graft/error.h"
#include "graft/log.h"
#include "train/run_output.h"

namespace fs = std::filesystem;

namespace graft::train {

namespace {

std::string recipe_stem(const Recipe& recipe) { return fs::path(recipe.file).stem().string(); }

/// The newest run dir of this recipe under runs/ that holds a checkpoint ("" if none).
std::string newest_run_dir(const Recipe& recipe) {
  std::error_code ec;
  std::string best;
  fs::file_time_type best_time{};
  const std::string prefix = recipe_stem(recipe) + "-";
  for (const auto& e : fs::directory_iterator("runs", ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || checkpoint_files((e.path() / "checkpoints").string()).empty()) continue;
    const auto t = fs::last_write_time(e.path() / "checkpoints", ec);
    if (best.empty() || t > best_time) best = e.path().string(), best_time = t;
  }
  return best;
}

void flatten(const Config& c, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (c.is_map()) {
    const auto keys = c.keys();
    if (keys.empty()) out[prefix] = "{}";
    for (const auto& k : keys) flatten(c[k], prefix.empty() ? k : prefix + "." + k, out);
  } else if (c.is_list()) {
    const auto items = c.items();
    if (items.empty()) out[prefix] = "[]";
    for (std::size_t i = 0; i < items.size(); ++i) flatten(items[i], prefix + "." + std::to_string(i), out);
  } else {
    out[prefix] = c.is_null() ? "~" : c.scalar();
  }
}

}  // namespace

std::string default_run_dir(const Recipe& recipe) {
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  fs::path dir = fs::path("runs") / (recipe_stem(recipe) + "-" + stamp);
  for (int k = 2; fs::exists(dir); ++k) dir = fs::path("runs") / fmt::format("{}-{}-{}", recipe_stem(recipe), stamp, k);
  return dir.string();
}

std::vector<std::string> recipe_diff(const std::string& saved_yaml, const std::string& current_yaml) {
  std::map<std::string, std::string> a, b;
  flatten(parse_yaml_text(saved_yaml, "the checkpoint's recipe"), "", a);
  flatten(parse_yaml_text(current_yaml, "the recipe"), "", b);
  std::vector<std::string> out;
  for (const auto& [k, v] : a) {
    const auto it = b.find(k);
    if (it == b.end()) out.push_back(fmt::format("{}: {} -> (removed)", k, v));
    else if (it->second != v) out.push_back(fmt::format("{}: {} -> {}", k, v, it->second));
  }
  for (const auto& [k, v] : b)
    if (!a.count(k)) out.push_back(fmt::format("{}: (absent) -> {}", k, v));
  return out;
}

bool changes_model(const std::string& line) {
  // the pretrained source does not matter once the checkpoint holds every weight
  return line.rfind("model.", 0) == 0 && line.rfind("model.weights", 0) != 0;
}

ResumePoint find_resume(const Recipe& recipe, const TrainOptions& options, const std::string& run_dir) {
  ResumePoint r;
  r.run_dir = run_dir;
  if (options.resume == "auto") {
    const std::string dir = run_dir.empty() ? newest_run_dir(recipe) : run_dir;
    if (!dir.empty()) r.from = newest_good((fs::path(dir) / "checkpoints").string());
    if (r.from) r.run_dir = dir;
    else log::info("--resume auto: no checkpoint to resume from{}: a new run starts", dir.empty() ? "" : " in " + dir);
  } else if (!options.resume.empty()) {
    if (!fs::exists(options.resume)) throw Error::usage("--resume " + options.resume + ": no such file");
    try {
      r.from = Checkpoint::load(options.resume);
    } catch (const Error& e) {
      throw Error::usage(std::string(e.what()));
    }
    const fs::path parent = fs::path(options.resume).parent_path();
    if (r.run_dir.empty() && parent.filename() == "checkpoints") r.run_dir = parent.parent_path().string();
  }
  if (!r.from) return r;
  std::vector<std::string> model_changes;
  const auto diff = recipe_diff(r.from->recipe_yaml(), recipe.root.to_yaml());
  for (const auto& line : diff)
    if (changes_model(line)) model_changes.push_back(line);
  if (!model_changes.empty())
    throw Error::usage(fmt::format("{}: the recipe's model is not the checkpoint's ({}); to start a new run from its "
                                   "weights, use --resume-weights-only {}",
                                   r.from->path(), fmt::join(model_changes, "; "), r.from->path()));
  for (const auto& line : diff) log::warn("resume: the recipe differs from the checkpoint's: {}", line);
  return r;
}

}  // namespace graft::train

namespace graft::train {

ResumePoint find_resume_in_group(const GroupSync& sync, const Recipe& recipe, const TrainOptions& options,
                                 const std::string& run_dir) {
  if (!sync.active()) return find_resume(recipe, options, run_dir);
  // rank 0 chooses; the others read the file it chose (or fail as it failed)
  ResumePoint point;
  std::string word;
  std::optional<Error> failed;
  if (sync.leader()) {
    try {
      point = find_resume(recipe, options, run_dir);
      word = "ok\n" + (point.from ? point.from->path() : "") + "\n" + point.run_dir;
    } catch (const Error& e) {
      failed = e;
      word = std::string(e.kind() == Error::Kind::usage ? "usage\n" : "runtime\n") + e.what();
    }
  }
  word = sync.from_leader(word, "choosing the checkpoint to resume from");
  if (failed) throw *failed;
  if (sync.leader()) return point;
  const auto nl = word.find('\n');
  const std::string status = word.substr(0, nl), rest = word.substr(nl + 1);
  if (status != "ok")
    throw Error(status == "usage" ? Error::Kind::usage : Error::Kind::runtime, "(rank 0) " + rest);
  const std::string path = rest.substr(0, rest.find('\n'));
  if (path.empty()) return point;
  try {
    point.from = Checkpoint::load(path);
  } catch (const std::exception& e) {
    throw Error::runtime(fmt::format("rank {}: cannot read {}, the checkpoint rank 0 resumes from (every rank needs "
                                     "the run dir, e.g. on a shared file system): {}",
                                     sync.rank(), path, e.what()));
  }
  return point;
}

}  // namespace graft::train
