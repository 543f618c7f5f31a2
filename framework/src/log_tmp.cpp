// TEMPORARY (replaced by the logging branch)
#include <spdlog/spdlog.h>

#include "graft/log.h"

namespace graft::log {
void write(Level level, const std::string& line) {
  switch (level) {
    case Level::debug: spdlog::debug("{}", line); break;
    case Level::info: spdlog::info("{}", line); break;
    case Level::warn: spdlog::warn("{}", line); break;
    case Level::error: spdlog::error("{}", line); break;
  }
}
bool enabled(Level level) {
  return spdlog::should_log(level == Level::debug  ? spdlog::level::debug
                            : level == Level::info ? spdlog::level::info
                            : level == Level::warn ? spdlog::level::warn
                                                   : spdlog::level::err);
}
}  // namespace graft::log
