#define BOOST_TEST_MODULE recipe
#include <boost/test/unit_test.hpp>

#include <fstream>

#include "graft/config.h"
#include "graft/host/recipe.h"
#include "support/plugins.h"
#include "support/run.h"

namespace fs = std::filesystem;
using graft::Config;
using graft::Error;
using graft::KeySpec;
using graft::ValueType;
using graft::test::error_of;

namespace {

struct Dir {
  fs::path path = graft::test::temp_dir("recipe");
  ~Dir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) const {
    const fs::path p = path / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
};

const graft::Schema backbone_schema = {
    KeySpec("num_classes", 10, "classes"),
    KeySpec("dropout", 0.5, "dropout"),
    KeySpec("widths", std::vector<std::int64_t>{1, 2}, "widths"),
    KeySpec("pretrained", false, "bool"),
    KeySpec::required_key("arch", ValueType::string, "architecture"),
};

}  // namespace

BOOST_AUTO_TEST_CASE(typed_access_and_defaults) {
  Dir d;
  const auto f = d.write("r.yaml", "model:\n  backbone:\n    arch: resnet18\n    num_classes: 7\n    dropout: 1e-1\n");
  const auto r = graft::load_recipe(f);
  const Config b = r.root["model"]["backbone"].validated(backbone_schema, "backbone test");
  BOOST_TEST(b.get<int>("num_classes") == 7);
  BOOST_TEST(b.get<double>("dropout") == 0.1);
  BOOST_TEST(b.get<std::string>("arch") == "resnet18");
  BOOST_TEST(!b.has("widths"));
  BOOST_TEST((b.get<std::vector<std::int64_t>>("widths") == std::vector<std::int64_t>{1, 2}));  // declared default
  BOOST_TEST(b.get<bool>("pretrained") == false);
  BOOST_TEST(b.path() == "model.backbone");
  BOOST_TEST(b.where().str() == f + ":3:5");
  BOOST_TEST(r.root["model"].get<int>("absent", 42) == 42);
}

BOOST_AUTO_TEST_CASE(unknown_key_names_file_line_col_and_suggests) {
  Dir d;
  const auto f = d.write("r.yaml", "model:\n  backbone:\n    arch: x\n    num_clases: 7\n");
  const auto r = graft::load_recipe(f);
  const auto e = error_of([&] { r.root["model"]["backbone"].validated(backbone_schema, "backbone test"); });
  BOOST_TEST(e.exit_code() == 2);
  BOOST_TEST(e.where().str() == f + ":4:5");
  BOOST_TEST(std::string(e.what()) ==
             f + ":4:5: model.backbone.num_clases: unknown key 'num_clases' in backbone test (did you mean 'num_classes'?)");
}

BOOST_AUTO_TEST_CASE(unknown_key_far_from_any_lists_known_keys) {
  Dir d;
  const auto f = d.write("r.yaml", "arch: x\nzzzzzzzzzz: 1\n");
  const auto e = error_of([&] { graft::load_recipe(f).root.validated(backbone_schema, "backbone test"); });
  BOOST_TEST(graft::test::contains(e.what(), "known keys: num_classes, dropout, widths, pretrained, arch"));
  BOOST_TEST(e.where().line == 2);
}

BOOST_AUTO_TEST_CASE(wrong_type_points_at_the_value) {
  Dir d;
  const auto f = d.write("r.yaml", "arch: x\nnum_classes: ten\n");
  const auto e = error_of([&] { graft::load_recipe(f).root.validated(backbone_schema, "backbone test"); });
  BOOST_TEST(std::string(e.what()) == f + ":2:14: num_classes: expected an integer, got 'ten'");
  BOOST_TEST(e.exit_code() == 2);

  const auto g = d.write("g.yaml", "arch: x\nwidths: [1, two]\n");
  const auto e2 = error_of([&] { graft::load_recipe(g).root.validated(backbone_schema, "backbone test"); });
  BOOST_TEST(graft::test::contains(e2.what(), "widths: expected a list of integers"));
  // A quoted number is a string, not an integer.
  const auto q = d.write("q.yaml", "arch: x\nnum_classes: \"10\"\n");
  BOOST_TEST(graft::test::contains(
      error_of([&] { graft::load_recipe(q).root.validated(backbone_schema, "b"); }).what(), "expected an integer"));
}

BOOST_AUTO_TEST_CASE(missing_required_key_points_at_the_section) {
  Dir d;
  const auto f = d.write("r.yaml", "model:\n  backbone:\n    num_classes: 3\n");
  const auto e = error_of([&] {
    graft::load_recipe(f).root["model"]["backbone"].validated(backbone_schema, "backbone test");
  });
  BOOST_TEST(std::string(e.what()) ==
             f + ":3:5: model.backbone: missing required key 'arch' (string) for backbone test");
}

BOOST_AUTO_TEST_CASE(yaml_syntax_error_has_line_and_column) {
  Dir d;
  const auto f = d.write("r.yaml", "model:\n  backbone: [1, 2\n  x: 1\n");
  const auto e = error_of([&] { graft::load_recipe(f); });
  BOOST_TEST(e.exit_code() == 2);
  BOOST_TEST(e.where().file == f);
  BOOST_TEST(e.where().line >= 2);
  BOOST_TEST(graft::test::contains(e.what(), "YAML syntax error"));
}

BOOST_AUTO_TEST_CASE(duplicate_key_is_an_error) {
  Dir d;
  const auto f = d.write("r.yaml", "seed: 1\nseed: 2\n");
  const auto e = error_of([&] { graft::load_recipe(f); });
  BOOST_TEST(std::string(e.what()) == f + ":2:1: duplicate key 'seed'");
}

BOOST_AUTO_TEST_CASE(missing_file_is_a_usage_error) {
  const auto e = error_of([] { graft::load_recipe("/nonexistent/recipe.yaml"); });
  BOOST_TEST(e.exit_code() == 2);
  BOOST_TEST(std::string(e.what()) == "/nonexistent/recipe.yaml: cannot open recipe file");
}

BOOST_AUTO_TEST_CASE(base_inheritance_deep_merges_maps_and_replaces_lists) {
  Dir d;
  d.write("bases/common.yaml",
          "seed: 1\nmodel:\n  backbone:\n    name: a\n    widths: [1, 2, 3]\n    keep: yes\ntrainer:\n  epochs: 5\n");
  d.write("bases/mid.yaml", "base: common.yaml\ntrainer:\n  epochs: 7\n  lr: 0.1\n");
  const auto f = d.write("r.yaml", "base: bases/mid.yaml\nmodel:\n  backbone:\n    name: b\n    widths: [9]\n");
  const auto r = graft::load_recipe(f);
  BOOST_TEST(r.root.get<int>("seed") == 1);
  BOOST_TEST(r.root["model"]["backbone"].get<std::string>("name") == "b");
  BOOST_TEST(r.root["model"]["backbone"].get<bool>("keep") == true);
  BOOST_TEST((r.root["model"]["backbone"].get<std::vector<std::int64_t>>("widths") == std::vector<std::int64_t>{9}));
  BOOST_TEST(r.root["trainer"].get<int>("epochs") == 7);
  BOOST_TEST(r.root["trainer"].get<double>("lr") == 0.1);
  BOOST_TEST(!r.root.has("base"));
  BOOST_TEST(r.sources.size() == 3u);
  // Locations still name the file each value came from.
  BOOST_TEST(graft::test::contains(r.root["seed"].where().str(), "common.yaml:1:7"));
  BOOST_TEST(r.root["model"]["backbone"]["name"].where().str() == f + ":4:11");
}

BOOST_AUTO_TEST_CASE(base_cycle_and_missing_base_are_errors) {
  Dir d;
  d.write("a.yaml", "base: b.yaml\n");
  d.write("b.yaml", "base: a.yaml\n");
  BOOST_TEST(graft::test::contains(error_of([&] { graft::load_recipe((d.path / "a.yaml").string()); }).what(),
                                   "inheritance cycle"));
  const auto f = d.write("c.yaml", "seed: 0\nbase: nope.yaml\n");
  const auto e = error_of([&] { graft::load_recipe(f); });
  BOOST_TEST(e.where().str() == f + ":2:7");
  BOOST_TEST(graft::test::contains(e.what(), "does not exist"));
}

BOOST_AUTO_TEST_CASE(set_overrides_parse_yaml_values) {
  Dir d;
  const auto f = d.write("r.yaml", "model:\n  backbone:\n    name: a\n    widths: [1, 2]\nlist: [{x: 1}, {x: 2}]\n");
  const auto r = graft::load_recipe(
      f, {"model.backbone.name=b", "model.backbone.widths=[3, 4, 5]", "trainer.max_steps=10", "list.1.x=7"});
  BOOST_TEST(r.root["model"]["backbone"].get<std::string>("name") == "b");
  BOOST_TEST((r.root["model"]["backbone"].get<std::vector<std::int64_t>>("widths") ==
              std::vector<std::int64_t>{3, 4, 5}));
  BOOST_TEST(r.root["trainer"].get<int>("max_steps") == 10);
  BOOST_TEST(r.root["list"][1].get<int>("x") == 7);
  BOOST_TEST(r.root["list"][0].get<int>("x") == 1);
  BOOST_TEST(r.root["trainer"]["max_steps"].where().str() == "--set trainer.max_steps=10");
}

BOOST_AUTO_TEST_CASE(bad_overrides_are_usage_errors) {
  Dir d;
  const auto f = d.write("r.yaml", "a: 1\nl: [1]\n");
  const auto no_eq = error_of([&] { graft::load_recipe(f, {"a"}); });
  BOOST_TEST(std::string(no_eq.what()) == "--set a: expected KEY.PATH=VALUE");
  BOOST_TEST(no_eq.exit_code() == 2);
  BOOST_TEST(graft::test::contains(error_of([&] { graft::load_recipe(f, {"a.b=1"}); }).what(), "inside a scalar"));
  BOOST_TEST(graft::test::contains(error_of([&] { graft::load_recipe(f, {"l.3=1"}); }).what(), "not an item"));
  BOOST_TEST(graft::test::contains(error_of([&] { graft::load_recipe(f, {"a..b=1"}); }).what(), "empty key"));
  BOOST_TEST(graft::test::contains(error_of([&] { graft::load_recipe(f, {"a=[1,"}); }).what(), "YAML"));
}

BOOST_AUTO_TEST_CASE(plugin_paths_are_relative_to_the_file_naming_them) {
  Dir d;
  d.write("sub/base.yaml", "plugins: [libs/extra.so]\n");
  d.write("sub/libs/extra.so", "");  // the path must exist; what it holds is the registry's concern
  const auto f = d.write("r.yaml", "base: sub/base.yaml\n");
  const auto r = graft::load_recipe(f);
  BOOST_TEST(r.plugin_paths.size() == 1u);
  BOOST_TEST(r.plugin_paths[0] == (d.path / "sub/libs/extra.so").lexically_normal().string());
  // a path that does not exist is the recipe's error, at its line
  d.write("sub/base.yaml", "plugins: [libs/absent.so]\n");
  const auto e = error_of([&] { graft::load_recipe(f); });
  BOOST_TEST(graft::test::contains(e.what(), "sub/base.yaml:1:11: plugins: "), e.what());
  BOOST_TEST(graft::test::contains(e.what(), "libs/absent.so: no such plugin library or directory"), e.what());
}

BOOST_AUTO_TEST_CASE(closest_match_suggests_only_plausible_typos) {
  BOOST_TEST(graft::closest_match("num_clases", {"num_classes", "in_channels"}) == "num_classes");
  BOOST_TEST(graft::closest_match("resnet81", {"resnet18", "resnet50", "vgg16"}) == "resnet18");
  BOOST_TEST(graft::closest_match("banana", {"resnet18", "vgg16"}).empty());
  BOOST_TEST(graft::closest_match("lr", {"lr_mult", "l"}) == "l");
}

BOOST_AUTO_TEST_CASE(merged_tree_round_trips_to_yaml) {
  Dir d;
  const auto f = d.write("r.yaml", "seed: 3\nname: \"007\"\nmodel: {backbone: {name: a}}\n");
  const auto r = graft::load_recipe(f, {"model.backbone.n=2"});
  const auto again = graft::parse_yaml_text(r.root.to_yaml(), "resolved");
  BOOST_TEST(again.get<int>("seed") == 3);
  BOOST_TEST(again.get<std::string>("name") == "007");
  BOOST_TEST(again["model"]["backbone"].get<int>("n") == 2);
}
