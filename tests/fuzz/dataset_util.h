// Opening a dataset plugin compiled into the harness (its GRAFT_PLUGIN lines fill this
// binary's plugin list) on a folder of the harness's files, and reading its samples.
#pragma once

#include <graft/data.h>
#include <graft/plugin.h>
#include <graft/host/recipe.h>

#include "fuzz_util.h"

namespace graft::fuzz {

inline std::shared_ptr<DataSource> make_dataset(const std::string& name, const std::string& root) {
  for (const auto& e : graft::detail::local_entries())
    if (e.kind == Kind::dataset && e.name == name)
      return std::any_cast<std::shared_ptr<DataSource>>(e.factory(parse_yaml_text("root: '" + root + "'", "fuzz")));
  std::fprintf(stderr, "no dataset plugin %s in this binary\n", name.c_str());
  std::abort();
}

[[noreturn]] inline void broken(const char* harness, const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", harness, what.c_str());
  std::abort();
}

/// Reads samples 0..limit-1 and the last one; checks their shape and target.
inline void read_samples(const char* harness, const Dataset& d, const std::vector<std::int64_t>& shape,
                         std::int64_t classes, std::int64_t limit = 32) {
  const auto n = d.size();
  const auto targets = d.targets();
  if (static_cast<std::int64_t>(targets.size()) != n) broken(harness, "targets() and size() disagree");
  auto one = [&](std::int64_t i) {
    const Sample s = d.get(i);
    if (s.input.sizes().vec() != shape || s.input.scalar_type() != torch::kUInt8)
      broken(harness, "sample " + std::to_string(i) + " is " + s.input.toString());
    if (s.target < 0 || s.target >= classes || s.target != targets[static_cast<std::size_t>(i)])
      broken(harness, "sample " + std::to_string(i) + " has target " + std::to_string(s.target));
  };
  for (std::int64_t i = 0; i < n && i < limit; ++i) one(i);
  if (n > 0) one(n - 1);
}

}  // namespace graft::fuzz
