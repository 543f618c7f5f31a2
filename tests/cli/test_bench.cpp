// tools/bench.sh --smoke: the benchmark command runs end to end (a step or two of every
// measurement, graft and Python) and writes its table and its JSON with every row. No
// timing is asserted here; the benchmark itself is `bash tools/bench.sh`. To stay within a
// minute, the training rows run one model and one batch size (--models cnn --batches 16);
// the start-up rows still build, train, checkpoint and resume ResNet-18 on both sides.
#define BOOST_TEST_MODULE bench
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "support/run.h"

namespace fs = std::filesystem;
using graft::test::contains;
using graft::test::run;
using json = nlohmann::json;

namespace {

const std::string source_dir = GRAFT_SOURCE_DIR;
const std::string build_dir = GRAFT_BUILD_DIR;

const std::vector<std::string> expected_rows = {
    "train/cnn/b16",  "rss/cnn/b16",
    "loader/alone",   "loader/preloaded", "loader/train",     "loader/efficiency",
    "jpeg/w1",        "jpeg/w2",
    "ckpt/save",      "ckpt/save_fsync",  "ckpt/load",        "ckpt/crc",
    "infer/cnn/optimized", "infer/cnn/eager", "infer/resnet18/optimized", "infer/resnet18/eager",
    "startup/plugin_scan", "startup/cli", "startup/fresh",    "startup/resume",
    "dist/cnn/b128",  "dist/allreduce_wait"};

void positive_values(const json& side, const std::string& what) {
  BOOST_TEST_REQUIRE(side["values"].is_array(), what);
  for (const auto& v : side["values"]) BOOST_TEST((v.is_number() && v.get<double>() > 0), what << ": " << v);
  if (!side["values"].empty()) BOOST_TEST(side["median"].get<double>() > 0, what);
}

struct Smoke {
  fs::path dir = graft::test::temp_dir("bench");
  graft::test::Result result;
  json report;
  Smoke() {
    const auto out = dir / "bench.json";
    result = run("cd " + source_dir + " && GRAFT_BUILD_DIR=" + build_dir + " bash tools/bench.sh --no-build --smoke --quiet --models cnn --batches 16" +
                 " --out " + out.string() + " --work " + (dir / "work").string());
    if (fs::exists(out)) report = json::parse(graft::test::slurp(out));
  }
  ~Smoke() { fs::remove_all(dir); }
};

const Smoke& smoke() {
  static Smoke s;
  return s;
}

const json* row(const std::string& id) {
  for (const auto& r : smoke().report["rows"])
    if (r["id"] == id) return &r;
  return nullptr;
}

}  // namespace

BOOST_AUTO_TEST_CASE(smoke_run_succeeds_and_prints_the_table) {
  const auto& s = smoke();
  BOOST_TEST_REQUIRE(s.result.code == 0, s.result.out << s.result.err);
  BOOST_TEST(s.report["failures"].empty(), s.report["failures"].dump());
  BOOST_TEST(contains(s.result.out, "graft/python"));
  BOOST_TEST(contains(s.result.out, "JSON: "));
  for (const auto& r : s.report["rows"]) BOOST_TEST(contains(s.result.out, r["label"].get<std::string>()), r["label"]);
  BOOST_TEST(s.report["machine"]["cores"].get<int>() > 0);
  BOOST_TEST(s.report["machine"]["load_before"].size() == 3u);
  BOOST_TEST(s.report["settings"]["smoke"] == true);
}

BOOST_AUTO_TEST_CASE(json_has_every_row_once) {
  BOOST_TEST_REQUIRE(smoke().report.contains("rows"), smoke().result.err);
  std::set<std::string> seen;
  for (const auto& r : smoke().report["rows"]) BOOST_TEST(seen.insert(r["id"].get<std::string>()).second, r["id"]);
  for (const auto& id : expected_rows) BOOST_TEST(seen.count(id) == 1u, id);
  BOOST_TEST(seen.size() == expected_rows.size());
}

BOOST_AUTO_TEST_CASE(numbers_are_positive_and_the_ratio_is_graft_over_python) {
  BOOST_TEST_REQUIRE(smoke().report.contains("rows"), smoke().result.err);
  for (const auto& r : smoke().report["rows"]) {
    const std::string id = r["id"];
    BOOST_TEST_CONTEXT(id) {
      BOOST_TEST((r["better"] == "higher" || r["better"] == "lower"));
      if (id != "dist/allreduce_wait") positive_values(r["graft"], id + " graft");  // a wait may round to 0
      positive_values(r["python"], id + " python");
      const bool resume_na = id == "startup/resume" && r["graft"]["values"].empty();
      if (!resume_na) BOOST_TEST(!r["graft"]["values"].empty());
      // Python has no plugin scan, checks no CRC; the all-reduce wait is graft's alone
      if (id == "startup/plugin_scan" || id == "ckpt/crc" || id == "dist/allreduce_wait") {
        BOOST_TEST(r["python"]["values"].empty());
        BOOST_TEST(r["ratio"].is_null());
        continue;
      }
      BOOST_TEST(!r["python"]["values"].empty());
      if (resume_na) {
        BOOST_TEST(r["ratio"].is_null());
        continue;
      }
      const double ratio = r["graft"]["median"].get<double>() / r["python"]["median"].get<double>();
      BOOST_TEST(std::abs(r["ratio"].get<double>() - ratio) <= 1e-9 * ratio);
      if (id.rfind("train/", 0) == 0 || id.rfind("rss/", 0) == 0) {  // every Python figure
        for (const std::string variant : {"malloc", "default"}) {
          positive_values(r["python_" + variant], id + " python_" + variant);
          BOOST_TEST(!r["python_" + variant]["values"].empty());
          const double d = r["graft"]["median"].get<double>() / r["python_" + variant]["median"].get<double>();
          BOOST_TEST(std::abs(r["ratio_" + variant].get<double>() - d) <= 1e-9 * d);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(goals_are_judged_and_resume_is_detected) {
  BOOST_TEST_REQUIRE(smoke().report.contains("rows"), smoke().result.err);
  for (const char* id : {"train/cnn/b16", "loader/efficiency", "jpeg/w1", "ckpt/save", "ckpt/load"}) {
    const json* r = row(id);
    BOOST_TEST_REQUIRE(r != nullptr, id);
    BOOST_TEST(r->contains("goal"), id);
    BOOST_TEST((*r)["met"].is_boolean(), id);
  }
  // the efficiency is the loader-fed run over the preloaded one, repeat by repeat
  const json* eff = row("loader/efficiency");
  const json* fed = row("loader/train");
  const json* pre = row("loader/preloaded");
  BOOST_TEST_REQUIRE((eff && fed && pre));
  const double e = 100 * (*fed)["graft"]["values"][0].get<double>() / (*pre)["graft"]["values"][0].get<double>();
  BOOST_TEST(std::abs((*eff)["graft"]["values"][0].get<double>() - e) <= 1e-9 * e);
  // the resume row runs when `graft train` has --resume, and says n/a when it has not
  const auto help = run(std::string(GRAFT_BIN) + " train --help");
  const json* resume = row("startup/resume");
  BOOST_TEST_REQUIRE(resume != nullptr);
  if (contains(help.out, "--resume")) BOOST_TEST(!(*resume)["graft"]["values"].empty());
  else BOOST_TEST(contains((*resume)["note"].get<std::string>(), "n/a (no --resume)"));
}
