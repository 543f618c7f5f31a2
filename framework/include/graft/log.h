// Logging for plugins and the core. A line logged here goes where the program running
// graft asked for (the `graft` command: stderr, and the run's train.log while it trains);
// with nothing asked for, it goes nowhere, and enabled() is false.
//
//   graft::log::info("best_k: kept {} ({} = {:.4f})", name, monitor, value);
//   graft::log::warn("cutout: size {} is larger than the image", size);
//
// The arguments are formatted (fmt, as fmt::format) only when the level is enabled.
#pragma once

#include <string>
#include <utility>

#include <fmt/format.h>

namespace graft::log {

enum class Level { debug, info, warn, error };

/// Logs one line (no trailing newline) at `level`.
void write(Level level, const std::string& line);
/// Whether a line at `level` goes anywhere: a cheap check before building an expensive one.
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
