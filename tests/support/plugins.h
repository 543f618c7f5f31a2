// Helpers shared by the test suites: the built-in plugins, recipe snippets and the
// graft::Error a call throws.
#pragma once

#include <boost/test/unit_test.hpp>

#include <string>
#include <utility>

#include "graft/error.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"

namespace graft::test {

/// Where the build puts the built-in plugin libraries.
inline std::string builtin_plugin_dir() { return std::string(GRAFT_BUILD_DIR) + "/lib/graft/plugins"; }

/// A registry holding the built-in plugins, scanned once per process.
inline graft::Registry& registry() {
  static graft::Registry r;
  static bool scanned = false;
  if (!scanned) r.scan({builtin_plugin_dir()});
  scanned = true;
  return r;
}

/// A recipe snippet, parsed as if read from "test.yaml" (errors point into it).
inline graft::Config yaml(const std::string& text) { return graft::parse_yaml_text(text, "test.yaml"); }

/// The graft::Error that `f` throws; fails the test when it throws none.
template <class F> graft::Error error_of(F&& f) {
  try {
    f();
  } catch (const graft::Error& e) {
    return e;
  }
  BOOST_FAIL("expected a graft::Error");
  throw;
}

/// error_of(), also checking that the message is a single line.
template <class F> graft::Error one_line_error_of(F&& f) {
  auto e = error_of(std::forward<F>(f));
  BOOST_TEST(std::string(e.what()).find('\n') == std::string::npos);
  return e;
}

}  // namespace graft::test
