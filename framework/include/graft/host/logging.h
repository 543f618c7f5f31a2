// Where graft's log lines go (host side: the program that runs graft decides, not the
// library). graft logs through its own logger (graft/log.h), which writes nowhere until
// asked to here; the embedding program's own logging (spdlog's default logger included)
// is left alone.
#pragma once

#include <memory>
#include <string>

#include "graft/log.h"

namespace graft {

/// Lines at `min` and above go to stderr as `level: text` (coloured on a terminal). A
/// second call replaces the first's level. The `graft` command calls it.
void log_to_stderr(log::Level min);

/// Every line (on stderr and in files) starts with `prefix`, e.g. "[rank 1] " in a
/// multi-process run. Call it at the program's start, before any other thread logs.
void log_prefix(const std::string& prefix);

/// For its lifetime, every line graft logs at `min` and above (from any thread, plugins'
/// lines included) is also appended to `path`, timestamped, flushed line by line. Several
/// can be open at once; each gets every line.
class LogFile {
 public:
  /// Opens `path` (truncated, unless `append`); throws graft::Error if it cannot.
  explicit LogFile(const std::string& path, bool append = false, log::Level min = log::Level::info);
  ~LogFile();
  LogFile(const LogFile&) = delete;
  LogFile& operator=(const LogFile&) = delete;

  /// A line to this file alone (not to stderr nor other files).
  void write(log::Level level, const std::string& line);
  const std::string& path() const { return path_; }

 private:
  struct Sink;
  std::string path_;
  std::shared_ptr<Sink> sink_;
};

}  // namespace graft
