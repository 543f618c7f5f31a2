#define BOOST_TEST_MODULE registry
#include <boost/test/unit_test.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "graft/model.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "support/plugins.h"
#include "support/run.h"

namespace fs = std::filesystem;
using graft::Kind;
using graft::test::contains;
using graft::test::builtin_plugin_dir;
using graft::test::error_of;
using graft::test::yaml;

namespace {

std::string fixture(const std::string& name) { return std::string(GRAFT_FIXTURE_DIR) + "/lib" + name + ".so"; }

std::string refusal_for(const graft::Registry& r, const std::string& lib) {
  for (const auto& x : r.refusals())
    if (x.library == lib) return x.reason;
  return "";
}

}  // namespace

BOOST_AUTO_TEST_CASE(good_library_registers_its_entries) {
  graft::Registry r;
  BOOST_TEST(r.load_library(fixture("graft_test_good")));
  BOOST_TEST(r.refusals().empty());
  const auto* tiny = r.find(Kind::backbone, "test_tiny");
  BOOST_REQUIRE(tiny);
  BOOST_TEST(tiny->library == fixture("graft_test_good"));
  BOOST_TEST(tiny->entry.doc == "test: one linear layer");
  BOOST_TEST(tiny->entry.keys.size() == 2u);
  BOOST_TEST(tiny->entry.keys[0].default_yaml == "4");
  BOOST_TEST(r.find(Kind::module, "test_scale"));
  BOOST_TEST(!r.find(Kind::backbone, "test_scale"));  // kinds are separate namespaces

  auto m = r.create<Kind::backbone>(yaml("{name: test_tiny, out: 3}"));
  BOOST_TEST(m.forward(torch::zeros({5, 4})).sizes() == torch::IntArrayRef({5, 3}));
  auto by_name = r.create<Kind::backbone>(yaml("test_tiny"));  // a bare name takes the defaults
  BOOST_TEST(by_name.forward(torch::zeros({1, 4})).size(1) == 2);
}

BOOST_AUTO_TEST_CASE(loading_twice_is_a_no_op) {
  graft::Registry r;
  BOOST_TEST(r.load_library(fixture("graft_test_good")));
  BOOST_TEST(r.load_library(fixture("graft_test_good")));
  BOOST_TEST(r.list().size() == 2u);
  BOOST_TEST(r.refusals().empty());
}

BOOST_AUTO_TEST_CASE(plugin_config_is_validated_against_its_keys) {
  graft::Registry r;
  r.load_library(fixture("graft_test_good"));
  const auto unknown = error_of([&] { r.create<Kind::module>(yaml("name: test_scale\nlabel: x\nfactr: 3\n")); });
  BOOST_TEST(unknown.exit_code() == 2);
  BOOST_TEST(std::string(unknown.what()) ==
             "test.yaml:3:1: factr: unknown key 'factr' in module test_scale (did you mean 'factor'?)");
  const auto missing = error_of([&] { r.create<Kind::module>(yaml("name: test_scale\n")); });
  BOOST_TEST(contains(missing.what(), "missing required key 'label' (string) for module test_scale"));
  const auto type = error_of([&] { r.create<Kind::module>(yaml("{name: test_scale, label: x, factor: big}")); });
  BOOST_TEST(contains(type.what(), "factor: expected a number, got 'big'"));
  // An error the factory raises about its own key keeps the key's location.
  const auto own = error_of([&] { r.create<Kind::module>(yaml("name: test_scale\nlabel: x\nfactor: 0\n")); });
  BOOST_TEST(std::string(own.what()) == "test.yaml:3:9: factor: must not be zero");
}

BOOST_AUTO_TEST_CASE(unknown_plugin_lists_and_suggests) {
  graft::Registry r;
  r.scan({builtin_plugin_dir()});
  const auto e = error_of([&] { r.create<Kind::backbone>(yaml("name: lenett\n")); });
  BOOST_TEST(e.exit_code() == 2);
  BOOST_TEST(contains(e.what(), "test.yaml:1:7: name: unknown backbone 'lenett' (did you mean 'lenet'?); known: "));
  BOOST_TEST(contains(e.what(), "lenet, mlp,"));
  graft::Registry empty;
  const auto none = error_of([&] { empty.create_any(Kind::metric, yaml("name: top1\n")); });
  BOOST_TEST(contains(none.what(), "no metric plugin is installed"));
}

BOOST_AUTO_TEST_CASE(throwing_factories_are_errors_naming_plugin_and_library) {
  graft::Registry r;
  r.load_library(fixture("graft_test_throwing"));
  const auto e = error_of([&] { r.create<Kind::module>(yaml("name: test_broken\n")); });
  BOOST_TEST(e.exit_code() == 1);
  BOOST_TEST(std::string(e.what()) ==
             "test.yaml:1:1: module 'test_broken' (libgraft_test_throwing.so) failed: out of coffee");
  const auto t = error_of([&] { r.create<Kind::module>(yaml("name: test_torch_error\n")); });
  BOOST_TEST(contains(t.what(), "module 'test_torch_error' (libgraft_test_throwing.so) failed: "));
  BOOST_TEST(!contains(t.what(), "\n"));  // one line, no LibTorch backtrace
}

BOOST_AUTO_TEST_CASE(abi_mismatch_is_refused_before_any_code_runs) {
  graft::Registry r;
  BOOST_TEST(!r.load_library(fixture("graft_test_abi_mismatch")));
  BOOST_TEST(contains(refusal_for(r, fixture("graft_test_abi_mismatch")),
                      "built for graft plugin ABI 999, this graft has ABI " + std::to_string(GRAFT_ABI_VERSION)));
  BOOST_TEST(!r.find(Kind::module, "test_mismatch"));
}

BOOST_AUTO_TEST_CASE(libtorch_mismatch_is_refused) {
  graft::Registry r;
  BOOST_TEST(!r.load_library(fixture("graft_test_torch_mismatch")));
  BOOST_TEST(contains(refusal_for(r, fixture("graft_test_torch_mismatch")),
                      std::string("built with LibTorch 0.4.1, this graft uses LibTorch ") + TORCH_VERSION));
  BOOST_TEST(!r.find(Kind::module, "test_mismatch"));
}

BOOST_AUTO_TEST_CASE(library_without_manifest_is_refused) {
  graft::Registry r;
  BOOST_TEST(!r.load_library(fixture("graft_test_not_a_plugin")));
  BOOST_TEST(contains(refusal_for(r, fixture("graft_test_not_a_plugin")), "not a graft plugin"));
}

BOOST_AUTO_TEST_CASE(duplicate_names_are_refused_and_the_first_kept) {
  graft::Registry r;
  r.scan({builtin_plugin_dir()});
  const auto* first = r.find(Kind::backbone, "lenet");
  BOOST_REQUIRE(first);
  r.load_library(fixture("graft_test_duplicate"));
  BOOST_TEST(contains(refusal_for(r, fixture("graft_test_duplicate")),
                      "duplicate backbone 'lenet', already provided by " + builtin_plugin_dir() + "/libgraft_backbones.so"));
  BOOST_TEST(r.find(Kind::backbone, "lenet")->library == builtin_plugin_dir() + "/libgraft_backbones.so");
  BOOST_TEST(r.find(Kind::module, "test_unique"));  // the rest of that library is usable
}

BOOST_AUTO_TEST_CASE(unloadable_and_missing_files_are_refused) {
  const auto dir = graft::test::temp_dir("registry");
  std::ofstream(dir / "libjunk.so") << "this is not an ELF file";
  graft::Registry r;
  BOOST_TEST(!r.load_library((dir / "libjunk.so").string()));
  BOOST_TEST(contains(refusal_for(r, (dir / "libjunk.so").string()), "cannot be loaded"));
  r.scan({(dir / "missing").string()});
  BOOST_TEST(contains(refusal_for(r, (dir / "missing").string()), "no such file or directory"));
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(scanning_a_directory_of_good_and_bad_libraries_never_crashes) {
  graft::Registry r;
  r.scan({builtin_plugin_dir(), GRAFT_FIXTURE_DIR});
  BOOST_TEST(r.find(Kind::backbone, "test_tiny"));
  BOOST_TEST(r.find(Kind::module, "test_broken"));
  BOOST_TEST(r.refusals().size() == 4u);  // abi, torch, not a plugin, one duplicate entry
  BOOST_TEST(r.find(Kind::backbone, "test_broken_net"));
}

BOOST_AUTO_TEST_CASE(search_path_is_builtin_then_environment) {
  ::setenv("GRAFT_PLUGIN_PATH", "/a/b:/c/libd.so", 1);
  const auto paths = graft::Registry::default_search_path();
  ::unsetenv("GRAFT_PLUGIN_PATH");
  BOOST_REQUIRE(paths.size() == 3u);
  BOOST_TEST(fs::equivalent(paths[0], builtin_plugin_dir()));
  BOOST_TEST(paths[1] == "/a/b");
  BOOST_TEST(paths[2] == "/c/libd.so");
}
