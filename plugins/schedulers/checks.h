// Range checks on scheduler keys: each fails at the key's own line of the recipe.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>

#include <graft/config.h>

namespace graft::sched {

/// A number as a user would write it (0.3, not 0.29999999999999999).
inline std::string num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

inline double positive(const Config& c, const std::string& key) {
  const double v = c.get<double>(key);
  if (!(v > 0)) c[key].fail("must be > 0, got " + num(v));
  return v;
}

inline double non_negative(const Config& c, const std::string& key) {
  const double v = c.get<double>(key);
  if (!(v >= 0)) c[key].fail("must be >= 0, got " + num(v));
  return v;
}

inline double unit_interval(const Config& c, const std::string& key) {
  const double v = c.get<double>(key);
  if (!(v >= 0 && v <= 1)) c[key].fail("must be in [0, 1], got " + num(v));
  return v;
}

inline std::int64_t at_least(const Config& c, const std::string& key, std::int64_t least) {
  const auto v = c.get<std::int64_t>(key);
  if (v < least) c[key].fail("must be >= " + std::to_string(least) + ", got " + std::to_string(v));
  return v;
}

}  // namespace graft::sched
