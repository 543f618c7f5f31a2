#define BOOST_TEST_MODULE registry
#include <boost/test/unit_test.hpp>
#include <elf.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "graft/model.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "registry/plugin_stamp.h"
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

BOOST_AUTO_TEST_CASE(a_mismatched_library_is_refused_with_one_line_naming_it_and_both_versions) {
  graft::Registry r;
  BOOST_TEST(!r.load_library(fixture("graft_test_abi_mismatch")));
  BOOST_REQUIRE(r.refusals().size() == 1u);
  BOOST_TEST(r.refusals()[0].str() == fixture("graft_test_abi_mismatch") +
                                          ": built for graft plugin ABI 999, this graft has ABI " +
                                          std::to_string(GRAFT_ABI_VERSION) + "; rebuild the plugin against this graft");
  BOOST_TEST(!r.find(Kind::module, "test_trace"));

  BOOST_TEST(!r.load_library(fixture("graft_test_torch_mismatch")));
  BOOST_TEST(r.refusals().back().str() == fixture("graft_test_torch_mismatch") +
                                              ": built with LibTorch 0.4.1, this graft uses LibTorch " + TORCH_VERSION +
                                              "; rebuild the plugin against this LibTorch");
  BOOST_TEST(!r.find(Kind::module, "test_trace"));
}

// The three trace fixtures are one source (real keys, a static initialiser of its own)
// that appends a line to $GRAFT_TEST_TRACE whenever any of its code runs.
BOOST_AUTO_TEST_CASE(nothing_of_a_mismatched_library_runs_static_initialisers_included) {
  const auto dir = graft::test::temp_dir("trace");
  const auto trace = dir / "trace.txt";
  ::setenv("GRAFT_TEST_TRACE", trace.c_str(), 1);

  // The control, with matching versions, under a new name so that this process loads it
  // afresh: loading it runs its initialiser, asking for its manifest its registration.
  const auto control = dir / "libcontrol.so";
  fs::copy_file(fixture("graft_test_trace"), control);
  graft::Registry matching;
  BOOST_TEST(matching.load_library(control.string()));
  BOOST_TEST(graft::test::slurp(trace) == "static initialiser\nregistration\n");
  BOOST_TEST(contains(graft::test::slurp("/proc/self/maps"), fs::canonical(control).string()));
  const auto* entry = matching.find(Kind::module, "test_trace");
  BOOST_REQUIRE(entry);
  BOOST_TEST(entry->entry.keys.size() == 3u);
  BOOST_TEST(entry->entry.keys[1].constraint_text() == "in [1, 1000]");
  matching.create_any(Kind::module, yaml("{name: test_trace, out: 3}"));
  BOOST_TEST(graft::test::slurp(trace) == "static initialiser\nregistration\nfactory\n");
  fs::remove(trace);

  for (const auto* name : {"graft_test_abi_mismatch", "graft_test_torch_mismatch"}) {
    graft::Registry r;
    BOOST_TEST(!r.load_library(fixture(name)));
    BOOST_TEST(!fs::exists(trace), name << " ran code: " << graft::test::slurp(trace));
    // Never even mapped into the process.
    BOOST_TEST(!contains(graft::test::slurp("/proc/self/maps"), fs::canonical(fixture(name)).string()));
  }
  ::unsetenv("GRAFT_TEST_TRACE");
  fs::remove_all(dir);
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

BOOST_AUTO_TEST_CASE(garbage_truncated_and_missing_files_are_refused_with_one_line) {
  const auto dir = graft::test::temp_dir("registry");
  std::ofstream(dir / "libjunk.so") << "this is not an ELF file";
  graft::Registry r;
  BOOST_TEST(!r.load_library((dir / "libjunk.so").string()));
  BOOST_TEST(refusal_for(r, (dir / "libjunk.so").string()) == "not a shared library (no ELF header)");

  // A plugin cut short anywhere: its section headers sit at the end of the file.
  const std::string good = graft::test::slurp(fixture("graft_test_good"));
  for (const std::size_t size : {std::size_t{4}, std::size_t{20}, std::size_t{64}, good.size() / 2, good.size() - 1}) {
    const auto cut = dir / ("libcut" + std::to_string(size) + ".so");
    std::ofstream(cut, std::ios::binary) << good.substr(0, size);
    BOOST_TEST(!r.load_library(cut.string()));
    const auto reason = refusal_for(r, cut.string());
    BOOST_TEST(contains(reason, size < EI_NIDENT ? "no ELF header" : "truncated or corrupt ELF file"), size << ": " << reason);
    BOOST_TEST(!contains(reason, "\n"));
  }

  r.scan({(dir / "missing").string()});
  BOOST_TEST(contains(refusal_for(r, (dir / "missing").string()), "no such file or directory"));
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(the_stamp_reader_never_crashes_on_a_damaged_file) {
  const std::string good = graft::test::slurp(fixture("graft_test_good"));
  std::string error;
  const auto stamp = graft::detail::parse_plugin_stamp(good, error);
  BOOST_REQUIRE(stamp);
  BOOST_TEST(stamp->abi_version == GRAFT_ABI_VERSION);
  BOOST_TEST(stamp->torch_version == TORCH_VERSION);

  // Every prefix near the start and the end (the ELF header; the section headers), and a
  // sample between, is refused with one line.
  for (std::size_t size = 0; size < good.size(); size += (size < 4096 || size + 8192 > good.size()) ? 1 : 997) {
    error.clear();
    BOOST_TEST_REQUIRE(!graft::detail::parse_plugin_stamp(std::string_view(good).substr(0, size), error));
    BOOST_TEST_REQUIRE(!error.empty());
    BOOST_TEST_REQUIRE(!contains(error, "\n"));
  }
  // Any byte of the ELF header, or of the section headers, set to 0xff or 0: a stamp or one line.
  Elf64_Ehdr header;
  std::memcpy(&header, good.data(), sizeof header);
  std::vector<std::size_t> offsets;
  for (std::size_t i = 0; i < sizeof header; ++i) offsets.push_back(i);
  for (std::size_t i = header.e_shoff; i < good.size(); ++i) offsets.push_back(i);
  std::string damaged = good;
  for (const std::size_t at : offsets) {
    for (const char value : {'\xff', '\0'}) {
      damaged[at] = value;
      error.clear();
      if (!graft::detail::parse_plugin_stamp(damaged, error)) BOOST_TEST_REQUIRE((!error.empty() && !contains(error, "\n")));
    }
    damaged[at] = good[at];
  }
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

// Defaults are not checked at run time (only what a recipe writes is), so every built-in
// plugin's defaults are checked here against the plugin's own constraints.
BOOST_AUTO_TEST_CASE(every_builtin_default_meets_its_own_constraints) {
  const auto& r = graft::test::registry();
  std::size_t constrained = 0;
  for (const auto* p : r.list()) {
    for (auto key : p->entry.keys) {
      if (key.required || key.default_yaml.empty() || key.default_yaml == "~" || !key.constrained()) continue;
      ++constrained;
      key.required = false;
      const std::string what = std::string(graft::kind_name(p->entry.kind)) + " " + p->entry.name;
      const auto written = yaml(key.name + ": " + key.default_yaml + "\n");
      BOOST_TEST_CONTEXT(what << " " << key.name << " = " << key.default_yaml) {
        BOOST_CHECK_NO_THROW(written.validated({key}, what));
      }
    }
  }
  BOOST_TEST(constrained > 50u);
}

BOOST_AUTO_TEST_CASE(constraints_reach_a_plugin_from_its_library) {
  graft::Registry r;
  r.scan({builtin_plugin_dir()});
  const auto* plateau = r.find(Kind::scheduler, "reduce_on_plateau");
  BOOST_REQUIRE(plateau);
  const auto& keys = plateau->entry.keys;
  const auto factor = std::find_if(keys.begin(), keys.end(), [](const auto& k) { return k.name == "factor"; });
  BOOST_REQUIRE(factor != keys.end());
  BOOST_TEST(factor->default_yaml == "0.1");
  BOOST_TEST(factor->constraint_text() == "in [0, 1)");
  const auto e = error_of([&] { r.create_any(Kind::scheduler, yaml("name: reduce_on_plateau\nfactor: 1.5\n")); });
  BOOST_TEST(e.exit_code() == 2);
  BOOST_TEST(std::string(e.what()) == "test.yaml:2:9: factor: must be in [0, 1), got 1.5");
}
