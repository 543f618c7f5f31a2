// graft's logger (graft/log.h) and where its lines go (graft/logging.h).
#include "graft/host/logging.h"

#include <algorithm>
#include <mutex>
#include <vector>

#include <spdlog/logger.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include "graft/error.h"

namespace graft {

struct LogFile::Sink {
  std::shared_ptr<spdlog::sinks::sink> sink;
};

namespace {

spdlog::level::level_enum to_spdlog(log::Level level) {
  switch (level) {
    case log::Level::debug: return spdlog::level::debug;
    case log::Level::info: return spdlog::level::info;
    case log::Level::warn: return spdlog::level::warn;
    case log::Level::error: return spdlog::level::err;
  }
  return spdlog::level::info;
}

/// A logger object of graft's own, never registered with spdlog: spdlog::get() and
/// spdlog's default logger (the embedding program's) never see it. Its sinks sit behind
/// one distributing sink, whose mutex lets a run add and remove its train.log while other
/// threads (data workers, plugins) log. Its level is the lowest of its sinks' levels, off
/// with none, so that a line nobody reads is not even formatted.
class Logger {
 public:
  Logger() : fanout_(std::make_shared<spdlog::sinks::dist_sink_mt>()), logger_("graft", fanout_) {
    logger_.set_level(spdlog::level::off);
    // every line reaches its file at once: a killed run's train.log ends where it stopped
    logger_.flush_on(spdlog::level::trace);
  }

  bool enabled(spdlog::level::level_enum level) const { return logger_.should_log(level); }
  void write(spdlog::level::level_enum level, const std::string& line) {
    if (prefix_.empty()) {
      logger_.log(spdlog::source_loc{}, level, spdlog::string_view_t(line));
      return;
    }
    const std::string tagged = prefix_ + line;
    logger_.log(spdlog::source_loc{}, level, spdlog::string_view_t(tagged));
  }
  /// Set once, before any thread logs (the program's start).
  void prefix(std::string p) { prefix_ = std::move(p); }

  void add(const std::shared_ptr<spdlog::sinks::sink>& sink) {
    std::lock_guard<std::mutex> lock(mutex_);
    fanout_->add_sink(sink);
    sinks_.push_back(sink);
    update_level();
  }
  void remove(const std::shared_ptr<spdlog::sinks::sink>& sink) {
    std::lock_guard<std::mutex> lock(mutex_);
    fanout_->remove_sink(sink);
    sinks_.erase(std::remove(sinks_.begin(), sinks_.end(), sink), sinks_.end());
    update_level();
  }
  /// The stderr sink at `level`: made on the first call, its level changed on later ones.
  void to_stderr(spdlog::level::level_enum level) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stderr_) {
      stderr_ = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
      stderr_->set_pattern("%^%l%$: %v");
      fanout_->add_sink(stderr_);
      sinks_.push_back(stderr_);
    }
    stderr_->set_level(level);
    update_level();
  }

 private:
  void update_level() {
    auto lowest = spdlog::level::off;
    for (const auto& s : sinks_) lowest = std::min(lowest, s->level());
    logger_.set_level(lowest);
  }

  std::shared_ptr<spdlog::sinks::dist_sink_mt> fanout_;
  spdlog::logger logger_;
  std::mutex mutex_;  // sinks_ and the level derived from them
  std::vector<std::shared_ptr<spdlog::sinks::sink>> sinks_;
  std::shared_ptr<spdlog::sinks::sink> stderr_;
  std::string prefix_;
};

/// Never destroyed: plugins and static destructors may log while the process exits.
Logger& logger() {
  static auto* const instance = new Logger;
  return *instance;
}

}  // namespace

void log::write(Level level, const std::string& line) { logger().write(to_spdlog(level), line); }

bool log::enabled(Level level) { return logger().enabled(to_spdlog(level)); }

void log_to_stderr(log::Level min) { logger().to_stderr(to_spdlog(min)); }

void log_prefix(const std::string& prefix) { logger().prefix(prefix); }

LogFile::LogFile(const std::string& path, bool append, log::Level min) : path_(path), sink_(std::make_shared<Sink>()) {
  try {
    sink_->sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/!append);
  } catch (const spdlog::spdlog_ex& e) {
    throw Error::runtime(fmt::format("{}: cannot write the log: {}", path, e.what()));
  }
  sink_->sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] %l: %v");
  sink_->sink->set_level(to_spdlog(min));
  logger().add(sink_->sink);
}

LogFile::~LogFile() { logger().remove(sink_->sink); }

void LogFile::write(log::Level level, const std::string& line) {
  const auto l = to_spdlog(level);
  if (!sink_->sink->should_log(l)) return;
  sink_->sink->log(spdlog::details::log_msg(spdlog::source_loc{}, "graft", l, spdlog::string_view_t(line)));
  sink_->sink->flush();
}

}  // namespace graft
