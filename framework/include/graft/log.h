// TEMPORARY (replaced by the logging branch): graft's log, for plugins and the core.
#pragma once

#include <string>
#include <utility>

#include <fmt/format.h>

namespace graft::log {
enum class Level { debug, info, warn, error };
void write(Level level, const std::string& line);
bool enabled(Level level);
template <class... A> void debug(fmt::format_string<A...> f, A&&... a) {
  if (enabled(Level::debug)) write(Level::debug, fmt::format(f, std::forward<A>(a)...));
}
template <class... A> void info(fmt::format_string<A...> f, A&&... a) {
  if (enabled(Level::info)) write(Level::info, fmt::format(f, std::forward<A>(a)...));
}
template <class... A> void warn(fmt::format_string<A...> f, A&&... a) {
  if (enabled(Level::warn)) write(Level::warn, fmt::format(f, std::forward<A>(a)...));
}
template <class... A> void error(fmt::format_string<A...> f, A&&... a) {
  if (enabled(Level::error)) write(Level::error, fmt::format(f, std::forward<A>(a)...));
}
}  // namespace graft::log
