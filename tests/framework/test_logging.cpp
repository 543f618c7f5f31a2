// graft's logger: it writes nowhere until asked, a LogFile gets every line logged in its
// lifetime (from any thread), and spdlog's default logger — the embedding program's — is
// never touched.
#define BOOST_TEST_MODULE logging
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "graft/error.h"
#include "graft/log.h"
#include "graft/host/logging.h"
#include "support/run.h"

namespace fs = std::filesystem;
using graft::log::Level;
using graft::test::contains;
using graft::test::slurp;

namespace {

struct Dir {
  fs::path path = graft::test::temp_dir("logging");
  ~Dir() { fs::remove_all(path); }
};

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace

BOOST_AUTO_TEST_CASE(nothing_asked_for_nothing_enabled) {
  for (Level l : {Level::debug, Level::info, Level::warn, Level::error}) BOOST_TEST(!graft::log::enabled(l));
  graft::log::error("goes nowhere {}", 1);  // and does not fail
}

BOOST_AUTO_TEST_CASE(a_log_file_gets_the_lines_at_its_level_for_its_lifetime) {
  Dir d;
  const auto a = d.path / "a.log", b = d.path / "b.log";
  {
    graft::LogFile file_a(a.string());
    BOOST_TEST(graft::log::enabled(Level::info));
    BOOST_TEST(!graft::log::enabled(Level::debug));
    graft::log::info("first {} of {}", 1, 2);
    {
      graft::LogFile file_b(b.string(), false, Level::debug);
      BOOST_TEST(graft::log::enabled(Level::debug));
      graft::log::debug("details");
      graft::log::warn("to both");
      file_b.write(Level::info, "to b alone");
    }
    BOOST_TEST(!graft::log::enabled(Level::debug));
    graft::log::error("after b closed");
  }
  for (Level l : {Level::debug, Level::info, Level::warn, Level::error}) BOOST_TEST(!graft::log::enabled(l));
  graft::log::error("after both closed");

  const std::string in_a = slurp(a), in_b = slurp(b);
  BOOST_TEST(contains(in_a, "] info: first 1 of 2\n"), in_a);
  BOOST_TEST(contains(in_a, "] warning: to both\n"), in_a);
  BOOST_TEST(contains(in_a, "] error: after b closed\n"), in_a);
  BOOST_TEST(!contains(in_a, "details"), in_a);
  BOOST_TEST(!contains(in_a, "to b alone"), in_a);
  BOOST_TEST(!contains(in_a, "after both closed"), in_a);
  BOOST_TEST(contains(in_b, "] debug: details\n"), in_b);
  BOOST_TEST(contains(in_b, "] warning: to both\n"), in_b);
  BOOST_TEST(contains(in_b, "] info: to b alone\n"), in_b);
  BOOST_TEST(!contains(in_b, "first"), in_b);
  BOOST_TEST(!contains(in_b, "after b closed"), in_b);
  BOOST_TEST(!contains(in_b, "after both closed"), in_b);
}

BOOST_AUTO_TEST_CASE(a_log_file_is_truncated_unless_appended_to) {
  Dir d;
  const auto path = (d.path / "train.log").string();
  {
    graft::LogFile f(path);
    graft::log::info("run one");
  }
  {
    graft::LogFile f(path, /*append=*/true);
    graft::log::info("run one resumed");
  }
  BOOST_TEST(contains(slurp(path), "run one\n"));
  BOOST_TEST(contains(slurp(path), "run one resumed\n"));
  {
    graft::LogFile f(path);
    graft::log::info("run two");
  }
  BOOST_TEST(!contains(slurp(path), "run one"), slurp(path));
  BOOST_TEST(contains(slurp(path), "run two\n"));
}

BOOST_AUTO_TEST_CASE(a_log_file_that_cannot_be_written_is_an_error_naming_it) {
  Dir d;
  std::ofstream(d.path / "a-file") << "not a directory";
  const auto path = (d.path / "a-file" / "train.log").string();
  try {
    graft::LogFile f(path);
    BOOST_FAIL("no error");
  } catch (const graft::Error& e) {
    BOOST_TEST(contains(e.what(), path), e.what());
  }
  BOOST_TEST(!graft::log::enabled(Level::error));  // nothing left half-added
}

// Lines logged from several threads while another thread opens and closes log files: the
// file open throughout gets every one of them, whole.
BOOST_AUTO_TEST_CASE(lines_from_many_threads_all_arrive_while_files_come_and_go) {
  Dir d;
  const auto path = (d.path / "all.log").string();
  constexpr int threads = 4, lines = 500;
  {
    graft::LogFile all(path);
    std::atomic<int> done{0};
    std::thread churn([&] {
      for (int k = 0; done.load() < threads; ++k) graft::LogFile passing((d.path / ("p" + std::to_string(k % 3))).string());
    });
    std::vector<std::thread> writers;
    for (int t = 0; t < threads; ++t)
      writers.emplace_back([&, t] {
        for (int i = 0; i < lines; ++i) graft::log::info("thread {} line {} end", t, i);
        ++done;
      });
    for (auto& w : writers) w.join();
    churn.join();
  }
  const std::string text = slurp(path);
  BOOST_TEST(count_of(text, " end\n") == std::size_t{threads * lines});
  for (int t = 0; t < threads; ++t) BOOST_TEST(contains(text, "info: thread " + std::to_string(t) + " line 499 end\n"));
}

BOOST_AUTO_TEST_CASE(spdlogs_default_logger_is_the_programs_and_stays_untouched) {
  const auto program = spdlog::default_logger();
  const auto sinks = program->sinks();
  const auto level = program->level();
  Dir d;
  {
    graft::LogFile f((d.path / "x.log").string());
    BOOST_TEST(spdlog::default_logger() == program);
    BOOST_TEST((program->sinks() == sinks));
    graft::log::info("graft's line");
  }
  BOOST_TEST(spdlog::default_logger() == program);
  BOOST_TEST((program->sinks() == sinks));
  BOOST_TEST(program->level() == level);
  BOOST_TEST(!spdlog::get("graft"));  // graft's logger is not registered under any name
}
