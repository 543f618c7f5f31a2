// What the harnesses share: a private temporary folder for the files an input becomes (the
// readers under test take paths), and the rule for outcomes. An error graft throws on
// purpose (graft::Error, any std::runtime_error, c10::Error) is a correct answer to a bad
// input; anything else that escapes (std::out_of_range, std::bad_alloc, ...) aborts the
// run, as do crashes and sanitizer reports.
#pragma once

#include <c10/util/Exception.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <graft/error.h>

namespace graft::fuzz {

/// A folder of this process's own, removed at exit.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/graft-fuzz-XXXXXX";
    if (!::mkdtemp(pattern.data())) {
      std::perror("mkdtemp");
      std::abort();
    }
    static std::string keep;
    keep = pattern;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(keep, ec);
    });
    return pattern;
  }();
  return dir;
}

/// Writes `size` bytes to scratch_dir()/name and returns the path.
inline std::string write_file(const std::string& name, const void* data, std::size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) {
    std::perror(path.c_str());
    std::abort();
  }
  return path;
}

/// Runs `f`; the errors graft means to throw are a normal outcome (printed when
/// GRAFT_FUZZ_VERBOSE is set, to read what a replayed input gets).
template <class F> void expect_clean(F&& f) {
  static const bool verbose = std::getenv("GRAFT_FUZZ_VERBOSE") != nullptr;
  try {
    f();
    if (verbose) std::fprintf(stderr, "ok\n");
  } catch (const graft::Error& e) {
    if (verbose) std::fprintf(stderr, "graft::Error: %s\n", e.what());
  } catch (const std::runtime_error& e) {
    if (verbose) std::fprintf(stderr, "std::runtime_error: %s\n", e.what());
  } catch (const c10::Error& e) {
    if (verbose) std::fprintf(stderr, "c10::Error: %s\n", e.what_without_backtrace());
  }
}

}  // namespace graft::fuzz
