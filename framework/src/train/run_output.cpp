#include "train/run_output.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "graft/error.h"
#include "graft/host/serialize.h"
#include "graft/host/trainer.h"
#include "graft/log.h"
#include "train/run_report.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace graft {

namespace {
void fsync_path(const fs::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

/// Puts a fully written temp file in place: fsync it, rename it, fsync its directory.
void commit(const fs::path& temp, const fs::path& target) {
  fsync_path(temp);
  fs::rename(temp, target);
  fsync_path(target.parent_path());
}
}  // namespace

RunOutput::RunOutput(std::string dir, std::optional<bool> progress, std::int64_t resume_step) : dir_(std::move(dir)) {
  bar_ = progress ? *progress : ::isatty(STDERR_FILENO) != 0;
  if (dir_.empty()) return;
  std::error_code ec;
  fs::create_directories(fs::path(dir_) / "checkpoints", ec);
  if (ec) throw Error::usage(fmt::format("{}: cannot create the run dir: {}", dir_, ec.message()));
  log_file_ = std::make_unique<LogFile>((fs::path(dir_) / "train.log").string(), /*append=*/resume_step >= 0);
  // what a killed run was writing when it died is not a checkpoint
  for (const auto& e : fs::directory_iterator(fs::path(dir_) / "checkpoints", ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() > 5 && name[0] == '.' && name.compare(name.size() - 4, 4, ".tmp") == 0) {
      log::info("{}: an unfinished write of a stopped run, removed", e.path().string());
      fs::remove(e.path(), ec);
    }
  }
  const fs::path metrics = fs::path(dir_) / "metrics.jsonl";
  std::string kept;
  if (resume_step >= 0) {
    // the records of the steps the resumed run will do again are dropped
    std::ifstream in(metrics);
    for (std::string line; std::getline(in, line);) {
      try {
        if (json::parse(line).value("step", std::int64_t{0}) <= resume_step) kept += line + "\n";
      } catch (const json::exception&) {  // a line cut short by a kill
      }
    }
  }
  metrics_.open(metrics, std::ios::trunc);  // a new run: its own records
  if (!metrics_) throw Error::usage(fmt::format("{}: cannot write metrics.jsonl", dir_));
  metrics_ << kept << std::flush;
  report_ = std::make_unique<train::RunReport>(dir_, resume_step >= 0);
}

RunOutput::~RunOutput() = default;

void RunOutput::write_text(const std::string& name, const std::string& text) const {
  if (dir_.empty()) return;
  const fs::path target = fs::path(dir_) / name;
  const fs::path temp = fs::path(dir_) / ("." + name + ".tmp");
  {
    std::ofstream out(temp, std::ios::binary);
    out << text;
    if (!out.flush()) throw Error::runtime(fmt::format("{}: cannot write", temp.string()));
  }
  commit(temp, target);
}

void RunOutput::metrics_line(const json& record) {
  if (!metrics_.is_open()) return;
  metrics_ << record.dump() << "\n";
  metrics_.flush();
}

void RunOutput::log_step(const std::string& line) {
  if (!bar_) {
    log::info("{}", line);
  } else if (log_file_) {
    log_file_->write(log::Level::info, line);
  }
}

void RunOutput::log_to_file(log::Level level, const std::string& line) {
  if (log_file_) log_file_->write(level, line);
}

void RunOutput::progress(std::int64_t epoch, std::int64_t epochs, std::int64_t batch, std::int64_t batches, double loss,
                         double img_per_s, double eta) {
  if (!bar_) return;
  const auto now = std::chrono::steady_clock::now();
  if (batch != batches && now - last_bar_ < std::chrono::milliseconds(100)) return;
  last_bar_ = now;
  constexpr int width = 24;
  const int filled = static_cast<int>(width * batch / std::max<std::int64_t>(batches, 1));
  const auto t = static_cast<std::int64_t>(eta + 0.5);
  std::cerr << fmt::format("\r\033[Kepoch {}/{} [{}{}] {}/{} loss {:.4f} {:.0f} img/s ETA {:02}:{:02}", epoch, epochs,
                           std::string(static_cast<std::size_t>(filled), '='),
                           std::string(static_cast<std::size_t>(width - filled), ' '), batch, batches, loss, img_per_s,
                           t / 60, t % 60)
            << std::flush;
  bar_shown_ = true;
}

void RunOutput::end_progress() {
  if (bar_shown_) std::cerr << "\r\033[K" << std::flush;
  bar_shown_ = false;
}

std::string RunOutput::checkpoints_dir() const { return (fs::path(dir_) / "checkpoints").string(); }

std::vector<std::string> RunOutput::write_checkpoint(const std::vector<std::string>& names,
                                                     const c10::impl::GenericDict& state) const {
  const fs::path dir = checkpoints_dir();
  std::vector<std::string> paths;
  fs::path first;
  for (const auto& name : names) {
    const fs::path target = dir / name;
    const fs::path temp = dir / ("." + name + ".tmp");
    std::error_code ec;
    try {
      if (first.empty()) {
        write_torch_file(c10::IValue(state), temp.string());
        first = target;
      } else {
        fs::remove(temp, ec);
        fs::create_hard_link(first, temp, ec);
        if (ec) fs::copy_file(first, temp, fs::copy_options::overwrite_existing);  // no hard links here
      }
      commit(temp, target);
    } catch (const std::exception& e) {
      fs::remove(temp, ec);
      const auto existing = list_checkpoints();
      throw Error::runtime(fmt::format("checkpoint {} not written: {}; the checkpoints already written are intact ({})",
                                       target.string(), e.what(),
                                       existing.empty() ? "there is none yet" : "newest: " + existing.back()));
    }
    paths.push_back(target.string());
  }
  return paths;
}

std::vector<std::string> checkpoint_files(const std::string& checkpoints_dir) {
  std::vector<std::pair<fs::file_time_type, std::string>> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(checkpoints_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.' || e.path().extension() != ".pth" || !e.is_regular_file(ec)) continue;
    files.emplace_back(fs::last_write_time(e.path(), ec), name);
  }
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a > b; });
  std::vector<std::string> out;
  for (const auto& f : files) out.push_back((fs::path(checkpoints_dir) / f.second).string());
  return out;
}

std::vector<std::string> RunOutput::list_checkpoints() const {
  std::vector<std::string> out;
  for (const auto& path : checkpoint_files(checkpoints_dir())) out.push_back(fs::path(path).filename().string());
  std::reverse(out.begin(), out.end());  // oldest first
  return out;
}

void RunOutput::remove_checkpoint(const std::string& name) const {
  std::error_code ec;
  fs::remove(fs::path(checkpoints_dir()) / name, ec);
  if (ec) log::warn("{}: cannot remove: {}", (fs::path(checkpoints_dir()) / name).string(), ec.message());
}

void RunOutput::final_report(const std::string& recipe, const FitResult& r) const {
  json j = {{"recipe", recipe},          {"epochs", r.epochs},   {"steps", r.steps}, {"stop_reason", r.stop_reason},
            {"seconds", r.seconds},      {"metrics", r.metrics}, {"checkpoint", r.checkpoint}};
  std::string text = fmt::format("recipe   {}\nstopped  {} after {} epochs, {} steps, {:.1f} s\n", recipe, r.stop_reason,
                                 r.epochs, r.steps, r.seconds);
  if (r.test) {
    j["test"] = {{"samples", r.test->samples}, {"metrics", r.test->metrics}};
    text += fmt::format("test     {} samples: loss {:.4f}", r.test->samples, r.test->metrics.at("loss"));
    for (const char* k : {"top1", "top5"})
      if (r.test->metrics.count(k)) text += fmt::format(", {} {:.2f}%", k, 100 * r.test->metrics.at(k));
    text += "\n\n" + r.test->report;
  }
  write_text("report.json", j.dump(2) + "\n");
  write_text("report.txt", text);
  std::cerr << text << std::flush;
}

}  // namespace graft
