// KeySpec constraints: declared with the key, checked by Config::validated() at the value's
// line, shown in a few words; and how a float default is written.
#define BOOST_TEST_MODULE config
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "graft/config.h"
#include "graft/host/recipe.h"
#include "support/plugins.h"
#include "support/run.h"

using graft::Config;
using graft::KeySpec;
using graft::ValueType;
using graft::test::contains;
using graft::test::one_line_error_of;

namespace {

Config recipe(const std::string& text) { return graft::parse_yaml_text(text, "recipe.yaml"); }

const graft::Schema optimizer_schema = {
    KeySpec("lr", 0.1, "learning rate").greater_than(0),
    KeySpec("momentum", 0.0, "momentum factor").min(0).max(1),
    KeySpec("dampening", 0.0, "dampening").min(0).less_than(1),
    KeySpec("clip", 10.0, "clip").max(10),
    KeySpec("below", 0.0, "below").less_than(10),
    KeySpec("steps", 1, "steps").min(1),
    KeySpec("std", 1.0, "a finite number").finite(),
    KeySpec("betas", std::vector<double>{0.9, 0.999}, "Adam's betas").min(0).less_than(1).length(2),
    KeySpec("milestones", ValueType::int_list, "~", "steps").non_empty().min(1),
    KeySpec("interval", "epoch", "when it steps").choices({"epoch", "step"}),
    KeySpec("splits", std::vector<std::string>{"train"}, "splits").choices({"train", "val", "test"}),
    KeySpec("monitor", "val/loss", "metric").non_empty(),
    KeySpec("rules", ValueType::section, "~", "rules").non_empty(),
};

// The one-line error validating `text` (an optimizer: section) gives.
std::string refusal(const std::string& text) {
  const auto e = one_line_error_of([&] { recipe(text)["optimizer"].validated(optimizer_schema, "optimizer sgd"); });
  BOOST_TEST(e.exit_code() == 2);
  return e.what();
}

bool accepted(const std::string& text) {
  recipe(text)["optimizer"].validated(optimizer_schema, "optimizer sgd");
  return true;
}

}  // namespace

BOOST_AUTO_TEST_CASE(inclusive_bounds_accept_their_boundary_and_refuse_past_it_with_the_location) {
  BOOST_TEST(accepted("optimizer:\n  momentum: 0\n"));
  BOOST_TEST(accepted("optimizer:\n  momentum: 1\n"));
  BOOST_TEST(accepted("optimizer:\n  clip: 10\n"));
  BOOST_TEST(accepted("optimizer:\n  steps: 1\n"));
  BOOST_TEST(refusal("seed: 0\noptimizer:\n  momentum: -0.5\n") ==
             "recipe.yaml:3:13: optimizer.momentum: must be in [0, 1], got -0.5");
  BOOST_TEST(refusal("optimizer:\n  momentum: 1.0001\n") ==
             "recipe.yaml:2:13: optimizer.momentum: must be in [0, 1], got 1.0001");
  BOOST_TEST(refusal("optimizer:\n  clip: 10.5\n") == "recipe.yaml:2:9: optimizer.clip: must be <= 10, got 10.5");
  BOOST_TEST(refusal("optimizer:\n  steps: 0\n") == "recipe.yaml:2:10: optimizer.steps: must be >= 1, got 0");
}

BOOST_AUTO_TEST_CASE(exclusive_bounds_refuse_their_boundary) {
  BOOST_TEST(accepted("optimizer:\n  lr: 1e-300\n"));
  BOOST_TEST(accepted("optimizer:\n  dampening: 0\n"));
  BOOST_TEST(accepted("optimizer:\n  dampening: 0.999\n"));
  BOOST_TEST(accepted("optimizer:\n  below: 9.99\n"));
  BOOST_TEST(refusal("optimizer:\n  lr: 0\n") == "recipe.yaml:2:7: optimizer.lr: must be > 0, got 0");
  BOOST_TEST(refusal("optimizer:\n  dampening: 1\n") == "recipe.yaml:2:14: optimizer.dampening: must be in [0, 1), got 1");
  BOOST_TEST(refusal("optimizer:\n  below: 10\n") == "recipe.yaml:2:10: optimizer.below: must be < 10, got 10");
}

BOOST_AUTO_TEST_CASE(nan_and_infinities_meet_no_bound_and_finite_refuses_them) {
  BOOST_TEST(refusal("optimizer:\n  lr: .nan\n") == "recipe.yaml:2:7: optimizer.lr: must be > 0, got .nan");
  BOOST_TEST(refusal("optimizer:\n  momentum: .inf\n") == "recipe.yaml:2:13: optimizer.momentum: must be in [0, 1], got .inf");
  BOOST_TEST(accepted("optimizer:\n  lr: .inf\n"));  // > 0 is all lr declares
  BOOST_TEST(accepted("optimizer:\n  std: -3.5\n"));
  BOOST_TEST(refusal("optimizer:\n  std: -.inf\n") == "recipe.yaml:2:8: optimizer.std: must be a finite number, got -.inf");
  BOOST_TEST(refusal("optimizer:\n  std: .nan\n") == "recipe.yaml:2:8: optimizer.std: must be a finite number, got .nan");
}

BOOST_AUTO_TEST_CASE(list_bounds_apply_to_each_item_at_its_own_location) {
  BOOST_TEST(accepted("optimizer:\n  betas: [0, 0.999]\n"));
  BOOST_TEST(refusal("optimizer:\n  betas: [0.9, 1.0]\n") == "recipe.yaml:2:16: optimizer.betas.1: must be in [0, 1), got 1.0");
  BOOST_TEST(refusal("optimizer:\n  betas: [-0.1, 0.5]\n") == "recipe.yaml:2:11: optimizer.betas.0: must be in [0, 1), got -0.1");
  BOOST_TEST(refusal("optimizer:\n  betas: [0.9]\n") == "recipe.yaml:2:10: optimizer.betas: must have 2 items, got 1");
  BOOST_TEST(refusal("optimizer:\n  betas: [0.9, 0.99, 0.999]\n") ==
             "recipe.yaml:2:10: optimizer.betas: must have 2 items, got 3");
  BOOST_TEST(accepted("optimizer:\n  milestones: [1, 5]\n"));
  BOOST_TEST(refusal("optimizer:\n  milestones:\n    - 3\n    - 0\n") ==
             "recipe.yaml:4:7: optimizer.milestones.1: must be >= 1, got 0");
}

BOOST_AUTO_TEST_CASE(choices_list_the_allowed_values_and_suggest_the_closest) {
  BOOST_TEST(accepted("optimizer:\n  interval: step\n"));
  BOOST_TEST(refusal("optimizer:\n  interval: steps\n") ==
             "recipe.yaml:2:13: optimizer.interval: must be one of: epoch, step; got 'steps' (did you mean 'step'?)");
  BOOST_TEST(refusal("optimizer:\n  interval: weekly\n") ==
             "recipe.yaml:2:13: optimizer.interval: must be one of: epoch, step; got 'weekly'");
  BOOST_TEST(accepted("optimizer:\n  splits: [val, test]\n"));
  BOOST_TEST(refusal("optimizer:\n  splits: [val, tset]\n") ==
             "recipe.yaml:2:17: optimizer.splits.1: must be one of: train, val, test; got 'tset' (did you mean 'test'?)");
}

BOOST_AUTO_TEST_CASE(non_empty_refuses_empty_strings_lists_and_sections) {
  BOOST_TEST(accepted("optimizer:\n  monitor: x\n  milestones: [1]\n  rules: [a]\n"));
  BOOST_TEST(refusal("optimizer:\n  monitor: ''\n") == "recipe.yaml:2:12: optimizer.monitor: must not be empty");
  BOOST_TEST(refusal("optimizer:\n  milestones: []\n") == "recipe.yaml:2:15: optimizer.milestones: must not be an empty list");
  BOOST_TEST(refusal("optimizer:\n  rules: {}\n") == "recipe.yaml:2:10: optimizer.rules: must not be empty");
}

BOOST_AUTO_TEST_CASE(only_written_values_are_checked) {
  // An absent key takes its default unchecked (a test of the registry checks that every
  // built-in plugin's defaults meet their own constraints); ~ is not a value to check.
  const graft::Schema schema = {KeySpec("n", -1, "unset").min(0)};
  BOOST_TEST(recipe("a: {}\n")["a"].validated(schema, "test").get<int>("n") == -1);
  BOOST_TEST(!recipe("a:\n  n: ~\n")["a"].validated(schema, "test").has("x"));
}

BOOST_AUTO_TEST_CASE(a_constraint_that_cannot_apply_to_the_type_is_refused_when_declared) {
  BOOST_CHECK_THROW(KeySpec("name", "x", "").min(0), std::invalid_argument);
  BOOST_CHECK_THROW(KeySpec("n", 1, "").choices({"1", "2"}), std::invalid_argument);
  BOOST_CHECK_THROW(KeySpec("n", 1, "").non_empty(), std::invalid_argument);
  BOOST_CHECK_THROW(KeySpec("n", 1, "").finite(), std::invalid_argument);
  BOOST_CHECK_THROW(KeySpec("x", 1.0, "").length(2), std::invalid_argument);
  BOOST_CHECK_THROW(KeySpec("s", "x", "").choices({}), std::invalid_argument);
  try {
    KeySpec("mode", "min", "").less_than(1);
    BOOST_ERROR("expected std::invalid_argument");
  } catch (const std::invalid_argument& e) {
    BOOST_TEST(std::string(e.what()) == "KeySpec 'mode': .less_than() applies to int, float and their lists, not to string");
  }
}

BOOST_AUTO_TEST_CASE(constraints_in_a_few_words) {
  BOOST_TEST(KeySpec("x", 0.0, "").constraint_text() == "");
  BOOST_TEST(KeySpec("x", 0.0, "").min(0).constraint_text() == ">= 0");
  BOOST_TEST(KeySpec("x", 0.1, "").greater_than(0).constraint_text() == "> 0");
  BOOST_TEST(KeySpec("x", 0.0, "").max(1).constraint_text() == "<= 1");
  BOOST_TEST(KeySpec("x", 0.0, "").less_than(2.5).constraint_text() == "< 2.5");
  BOOST_TEST(KeySpec("x", 0.0, "").min(0).less_than(1).constraint_text() == "in [0, 1)");
  BOOST_TEST(KeySpec("x", 0.5, "").greater_than(0).max(1).constraint_text() == "in (0, 1]");
  BOOST_TEST(KeySpec("x", 0.5, "").finite().constraint_text() == "finite");
  BOOST_TEST(KeySpec("x", 0.5, "").greater_than(0).finite().constraint_text() == "finite and > 0");
  BOOST_TEST(KeySpec("x", 0.5, "").min(0).max(1).finite().constraint_text() == "in [0, 1]");  // implied
  BOOST_TEST(KeySpec("x", "a", "").choices({"a", "b"}).constraint_text() == "one of: a, b");
  BOOST_TEST(KeySpec("x", "a", "").non_empty().constraint_text() == "non-empty");
  BOOST_TEST(KeySpec("b", std::vector<double>{0.9, 0.999}, "").min(0).less_than(1).length(2).constraint_text() ==
             "2 items, each in [0, 1)");
  BOOST_TEST(KeySpec("k", std::vector<std::int64_t>{1}, "").non_empty().min(1).constraint_text() == "non-empty, each >= 1");
  BOOST_TEST(KeySpec("s", std::vector<std::string>{}, "").choices({"a", "b"}).constraint_text() == "each one of: a, b");
  BOOST_TEST(KeySpec("n", 1, "").min(1).max(125).constraint_text() == "in [1, 125]");
}

BOOST_AUTO_TEST_CASE(float_defaults_are_written_as_the_shortest_text_that_reads_back_the_same) {
  BOOST_TEST(KeySpec("m", 0.9, "").default_yaml == "0.9");
  BOOST_TEST(KeySpec("m", 0.1, "").default_yaml == "0.1");
  BOOST_TEST(KeySpec("m", 2.0, "").default_yaml == "2.0");  // still a float to YAML readers
  BOOST_TEST(KeySpec("m", 0.0, "").default_yaml == "0.0");
  BOOST_TEST(KeySpec("m", -0.5, "").default_yaml == "-0.5");
  BOOST_TEST(KeySpec("m", 1e-8, "").default_yaml == "1e-08");
  BOOST_TEST(KeySpec("m", 1e4, "").default_yaml == "10000.0");
  BOOST_TEST(KeySpec("m", 1.0 / 3, "").default_yaml == "0.3333333333333333");
  BOOST_TEST(KeySpec("m", 0.1 + 0.2, "").default_yaml == "0.30000000000000004");
  BOOST_TEST(KeySpec("m", std::numeric_limits<double>::infinity(), "").default_yaml == ".inf");
  BOOST_TEST(KeySpec("m", -std::numeric_limits<double>::infinity(), "").default_yaml == "-.inf");
  BOOST_TEST(KeySpec("m", std::nan(""), "").default_yaml == ".nan");
  BOOST_TEST(KeySpec("b", std::vector<double>{0.9, 0.999}, "").default_yaml == "[0.9, 0.999]");
  // Each reads back as exactly the double it was made from.
  for (const double v : {0.9, 1.0 / 3, 0.1 + 0.2, 1e-8, 123456.789, 5e-324, 1.7976931348623157e308}) {
    const graft::Schema schema = {KeySpec("v", v, "")};
    BOOST_TEST(recipe("{}")["x"].validated(schema, "t").get<double>("v") == v);
  }
}
