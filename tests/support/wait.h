// Waits driven by observed progress, never by the clock: a test polls for what it is
// waiting for (a file, a log line, a step, a process exit). The bound is only a safety net
// for a hang and is generous, since on a busy machine a launch can take many seconds; when
// it is hit the test fails with a line saying what it was waiting for.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

namespace graft::test {

/// The safety net for every wait (GRAFT_TEST_WAIT_S overrides it).
inline std::chrono::seconds wait_bound() {
  const char* env = std::getenv("GRAFT_TEST_WAIT_S");
  return std::chrono::seconds(env ? std::atoi(env) : 600);
}

/// Polls `done()` until it returns true; throws, naming `what`, if the bound passes first.
template <class Done>
void wait_until(Done&& done, const std::string& what) {
  const auto bound = wait_bound();
  const auto limit = std::chrono::steady_clock::now() + bound;
  while (!done()) {
    if (std::chrono::steady_clock::now() > limit)
      throw std::runtime_error("gave up after " + std::to_string(bound.count()) + " s waiting for " + what);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace graft::test
