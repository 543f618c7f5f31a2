// `graft new-plugin KIND NAME [DIR]`: a project for every plugin kind. The build compiles
// each kind's generated source into one fixture library (tests/CMakeLists.txt); here each
// kind's recipe trains with it, and one generated project is built against the installed
// package, as a plugin author builds it: its precompiled header, its test, `graft plugins`,
// its recipe.
#define BOOST_TEST_MODULE new_plugin
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <set>

#include "support/run.h"

namespace fs = std::filesystem;
using graft::test::contains;
using graft::test::run;
using nlohmann::json;

namespace {
const std::string graft_bin = GRAFT_BIN;
const std::vector<std::string> kinds = {"backbone", "module",    "initializer", "freezer", "checkpoint", "hook",
                                        "dataset",  "transform", "optimizer",   "scheduler", "loss",     "metric"};

struct Dir {
  fs::path path = graft::test::temp_dir("new-plugin");
  ~Dir() { fs::remove_all(path); }
};
}  // namespace

BOOST_AUTO_TEST_CASE(every_kind_graft_has_gets_a_template) {
  // the kinds graft lists are the kinds new-plugin knows
  const auto listed = run(graft_bin + " plugins --json");
  BOOST_TEST_REQUIRE(listed.code == 0, listed.err);
  std::set<std::string> have;
  for (const auto& p : json::parse(listed.out)) have.insert(p["kind"].get<std::string>());
  BOOST_TEST(have == std::set<std::string>(kinds.begin(), kinds.end()));
}

BOOST_AUTO_TEST_CASE(each_kind_registers_and_its_recipe_trains) {
  const std::string generated = std::string(GRAFT_BUILD_DIR) + "/tests/generated";
  const std::string library = std::string(GRAFT_FIXTURE_DIR) + "/libgraft_test_generated.so";
  for (const auto& kind : kinds) {
    BOOST_TEST_CONTEXT(kind) {
      const auto listed = run("GRAFT_PLUGIN_PATH=" + library + " " + graft_bin + " plugins " + kind + " --json");
      BOOST_TEST_REQUIRE(listed.code == 0, listed.err);
      bool found = false;
      for (const auto& p : json::parse(listed.out)) found = found || p["name"] == "gen_" + kind;
      BOOST_TEST(found);
      // the project's recipe (plugins: [build]) with the library where its build would put it
      Dir d;
      fs::copy(generated + "/" + kind, d.path, fs::copy_options::recursive);
      fs::create_directories(d.path / "build");
      fs::copy_file(library, d.path / "build/libgen.so");
      const auto trained = run("cd " + d.path.string() + " && " + graft_bin + " train recipe.yaml --progress 0 --json");
      BOOST_TEST_REQUIRE(trained.code == 0, trained.err);
      const auto j = json::parse(trained.out);
      BOOST_TEST(j["steps"].get<int>() > 0);
      BOOST_TEST(contains(graft::test::slurp(d.path / "recipe.yaml"), "gen_" + kind));
    }
  }
}

BOOST_AUTO_TEST_CASE(refuses_an_unknown_kind_a_bad_name_and_a_used_directory) {
  Dir d;
  const auto kind = run(graft_bin + " new-plugin hooks my_hook " + (d.path / "a").string());
  BOOST_TEST(kind.code == 2);
  BOOST_TEST(contains(kind.err, "unknown kind 'hooks' (kinds: backbone, module,"), kind.err);
  const auto name = run(graft_bin + " new-plugin hook My-Hook " + (d.path / "b").string());
  BOOST_TEST(name.code == 2);
  BOOST_TEST(contains(name.err, "invalid name 'My-Hook'"), name.err);
  const auto made = run(graft_bin + " new-plugin hook my_hook " + (d.path / "c").string());
  BOOST_TEST_REQUIRE(made.code == 0, made.err);
  for (const char* f : {"my_hook.cpp", "test_my_hook.cpp", "CMakeLists.txt", "recipe.yaml", "README.md"})
    BOOST_TEST(fs::exists(d.path / "c" / f), f);
  BOOST_TEST(contains(graft::test::slurp(d.path / "c/my_hook.cpp"), "GRAFT_PLUGIN(hook, \"my_hook\", make_my_hook,"));
  const auto again = run(graft_bin + " new-plugin hook my_hook " + (d.path / "c").string());
  BOOST_TEST(again.code == 2);
  BOOST_TEST(contains(again.err, "exists and is not empty"), again.err);
}

BOOST_AUTO_TEST_CASE(a_generated_project_builds_against_the_installed_package) {
  Dir d;
  const auto prefix = d.path / "prefix";
  const std::string cmake = GRAFT_CMAKE;
  const auto install = run(cmake + " --install " + GRAFT_BUILD_DIR + " --prefix " + prefix.string());
  BOOST_TEST_REQUIRE(install.code == 0, install.out + install.err);
  const std::string graft = (prefix / "bin/graft").string();

  const auto project = d.path / "shift_head";
  const auto made = run(graft + " new-plugin module shift_head " + project.string());
  BOOST_TEST_REQUIRE(made.code == 0, made.err);
  const auto build = project / "build";
  const auto configure = run(cmake + " -S " + project.string() + " -B " + build.string() + " -DCMAKE_PREFIX_PATH=" +
                             prefix.string() + " -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER_LAUNCHER=ccache");
  BOOST_TEST_REQUIRE(configure.code == 0, configure.out + configure.err);
  // ccache sees paths relative to the temp dir (a rerun hits its cache); the sloppiness
  // lets it cache the precompiled header and the sources that use it
  const auto compile = run("CCACHE_BASEDIR=" + d.path.string() +
                           " CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime " + cmake +
                           " --build " + build.string() + " --verbose");
  BOOST_TEST_REQUIRE(compile.code == 0, compile.out + compile.err);
  BOOST_TEST(fs::exists(build / "libshift_head.so"));
  // the plugin's source was compiled with the project's precompiled LibTorch header
  BOOST_TEST(contains(compile.out, "graft_plugin_pch.dir/cmake_pch.hxx"), compile.out);

  const auto tested = run("cd " + build.string() + " && ctest --output-on-failure");
  BOOST_TEST(tested.code == 0, tested.out + tested.err);
  const auto listed = run("GRAFT_PLUGIN_PATH=" + build.string() + " " + graft + " plugins module --json");
  BOOST_TEST_REQUIRE(listed.code == 0, listed.err);
  BOOST_TEST(contains(listed.out, "\"shift_head\""));
  BOOST_TEST(listed.err.empty(), listed.err);
  const auto trained = run("cd " + project.string() + " && " + graft + " train recipe.yaml --progress 0 --json");
  BOOST_TEST_REQUIRE(trained.code == 0, trained.err);
  BOOST_TEST(contains(trained.err, "surgery: shift_head 'shift_head' inserted after flatten"), trained.err);
}
