// The initializer plugins (plugins/initializers) against Python's torch.nn.init: exact
// results for the deterministic methods, moments for the random ones, calculate_gain value
// for value, and the errors a recipe or a wrong tensor gets.
#define BOOST_TEST_MODULE initializers
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <fstream>

#include "graft/init.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "initializers/gain.h"
#include "support/plugins.h"
#include "support/run.h"

using graft::Kind;
using graft::test::contains;
using json = nlohmann::json;
using graft::test::one_line_error_of;
using graft::test::registry;

namespace {

graft::InitFn make(const std::string& spec) {
  return registry().create<Kind::initializer>(graft::test::yaml(spec));
}

torch::Tensor filled(const std::string& spec, std::vector<std::int64_t> shape) {
  auto t = torch::full(shape, 123.0);
  make(spec)(t);
  return t;
}

// The random methods: a recipe, the same call in Python, a shape, and the mean and std that
// Python's formulas give (computed here from the fans, as nn.init does).
struct Case {
  std::string id, yaml, python;
  std::vector<std::int64_t> shape;
  double mean, std;
  double lo = -INFINITY, hi = INFINITY;  // hard bounds of the distribution
  bool reaches_bounds = true;            // whether 200k draws come close to both
};

// Mean and std of N(mean, std^2) truncated to [a, b] (the textbook formulas).
std::pair<double, double> truncated(double mean, double std, double a, double b) {
  auto pdf = [](double x) { return std::exp(-x * x / 2) / std::sqrt(2 * M_PI); };
  auto cdf = [](double x) { return (1 + std::erf(x / std::sqrt(2.0))) / 2; };
  const double al = (a - mean) / std, be = (b - mean) / std, z = cdf(be) - cdf(al);
  const double shift = (pdf(al) - pdf(be)) / z;
  const double var = 1 + (al * pdf(al) - be * pdf(be)) / z - shift * shift;
  return {mean + std * shift, std * std::sqrt(var)};
}

const double sqrt3 = std::sqrt(3.0);

std::vector<Case> cases() {
  const double uni = 2.0 / std::sqrt(12.0);  // std of U(-0.5, 1.5)
  // xavier on [256, 128, 3, 3]: fan_in 1152, fan_out 2304
  const double xav = std::sqrt(2.0 / (1152 + 2304));
  const double relu = std::sqrt(2.0);
  const double leaky02 = std::sqrt(2.0 / (1 + 0.04));
  const auto tn = truncated;
  return {
      {"uniform", "{name: uniform, a: -0.5, b: 1.5}", "uniform_(t, a=-0.5, b=1.5)", {512, 512}, 0.5, uni, -0.5, 1.5},
      {"normal", "{name: normal, mean: 2, std: 0.5}", "normal_(t, mean=2, std=0.5)", {512, 512}, 2.0, 0.5},
      {"xavier_uniform", "xavier_uniform", "xavier_uniform_(t)", {256, 128, 3, 3}, 0, xav, -sqrt3 * xav, sqrt3 * xav},
      {"xavier_uniform_gain", "{name: xavier_uniform, gain: 2.5}", "xavier_uniform_(t, gain=2.5)", {256, 128, 3, 3},
       0, 2.5 * xav, -2.5 * sqrt3 * xav, 2.5 * sqrt3 * xav},
      {"xavier_normal_relu", "{name: xavier_normal, gain_for: relu}",
       "xavier_normal_(t, gain=calculate_gain('relu'))", {256, 128, 3, 3}, 0, relu * xav},
      {"xavier_normal_leaky", "{name: xavier_normal, gain_for: leaky_relu, param: 0.2}",
       "xavier_normal_(t, gain=calculate_gain('leaky_relu', 0.2))", {256, 128, 3, 3}, 0, leaky02 * xav},
      {"kaiming_uniform", "kaiming_uniform", "kaiming_uniform_(t)", {512, 256}, 0, relu / 16,
       -sqrt3 * relu / 16, sqrt3 * relu / 16},
      {"kaiming_uniform_leaky_fan_out", "{name: kaiming_uniform, a: 0.2, mode: FAN_OUT}",
       "kaiming_uniform_(t, a=0.2, mode='FAN_OUT')", {256, 512}, 0, leaky02 / 16, -sqrt3 * leaky02 / 16,
       sqrt3 * leaky02 / 16},
      {"kaiming_normal_relu_fan_out", "{name: kaiming_normal, mode: fan_out, nonlinearity: relu}",
       "kaiming_normal_(t, mode='fan_out', nonlinearity='relu')", {256, 64, 3, 3}, 0, relu / std::sqrt(256 * 9.0)},
      {"kaiming_normal_selu", "{name: kaiming_normal, nonlinearity: selu}",
       "kaiming_normal_(t, nonlinearity='selu')", {512, 512}, 0, 0.75 / std::sqrt(512.0)},
      {"kaiming_normal_tanh_a_ignored", "{name: kaiming_normal, a: 5, nonlinearity: tanh}",
       "kaiming_normal_(t, a=5, nonlinearity='tanh')", {512, 512}, 0, 5.0 / 3 / std::sqrt(512.0)},
      {"trunc_normal", "trunc_normal", "trunc_normal_(t)", {512, 512}, tn(0, 1, -2, 2).first,
       tn(0, 1, -2, 2).second, -2, 2},
      {"trunc_normal_shifted", "{name: trunc_normal, mean: 0.5, std: 2, a: -1, b: 3}",
       "trunc_normal_(t, mean=0.5, std=2, a=-1, b=3)", {512, 512}, tn(0.5, 2, -1, 3).first,
       tn(0.5, 2, -1, 3).second, -1, 3},
      {"trunc_normal_timm", "{name: trunc_normal, std: 0.02, a: -0.04, b: 0.04}",
       "trunc_normal_(t, std=0.02, a=-0.04, b=0.04)", {512, 512}, 0, tn(0, 0.02, -0.04, 0.04).second, -0.04, 0.04},
      {"trunc_normal_one_sided", "{name: trunc_normal, mean: 1, std: 1, a: 0, b: 10}",
       "trunc_normal_(t, mean=1, std=1, a=0, b=10)", {512, 512}, tn(1, 1, 0, 10).first, tn(1, 1, 0, 10).second,
       0, 10, false},
      {"sparse", "{name: sparse, sparsity: 0.1, std: 0.5}", "sparse_(t, sparsity=0.1, std=0.5)", {500, 400},
       0, 0.5 * std::sqrt(0.9)},
  };
}

std::vector<std::pair<std::vector<std::int64_t>, std::int64_t>> dirac_cases() {
  return {{{6, 3, 3, 3}, 1}, {{6, 3, 3, 3}, 2}, {{6, 3, 3, 3}, 3}, {{2, 4, 3, 3}, 1}, {{4, 6, 5}, 2},
          {{4, 2, 3, 3, 3}, 2}, {{8, 2, 4, 4}, 4}, {{3, 3, 1, 2}, 1}};
}

std::vector<std::pair<std::string, json>> gain_queries() {
  std::vector<std::pair<std::string, json>> q;
  for (const auto& n : graft::init::gain_nonlinearities()) q.emplace_back(n, nullptr);
  for (double p : {0.0, 0.01, 0.2, 1.0, 3.0, -0.5}) q.emplace_back("leaky_relu", p);
  q.emplace_back("relu", 0.5);
  q.emplace_back("tanh", 0.5);
  for (const char* n : {"relu6", "gelu", "ReLU", "identity", "Linear", "elu", ""}) q.emplace_back(n, nullptr);
  return q;
}

// Python's answers to everything above, asked once.
const json& python() {
  static const json answers = [] {
    json q{{"gains", json::array()}, {"dirac", json::array()}, {"stats", json::object()}};
    for (const auto& [n, p] : gain_queries()) q["gains"].push_back({n, p});
    for (const auto& [shape, groups] : dirac_cases()) q["dirac"].push_back({shape, groups});
    for (const auto& c : cases()) q["stats"][c.id] = {c.python, c.shape};
    const auto dir = graft::test::temp_dir("init");
    const auto file = dir / "queries.json";
    std::ofstream(file) << q.dump();
    const auto r = graft::test::run(std::string(GRAFT_PYTHON) + " " + GRAFT_SOURCE_DIR +
                                    "/tests/plugins/init_oracle.py " + file.string());
    std::filesystem::remove_all(dir);
    if (r.code != 0) throw std::runtime_error("init_oracle.py failed: " + r.err);
    return json::parse(r.out);
  }();
  return answers;
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_torch_nn_init_method_is_a_plugin) {
  std::set<std::string> names;
  for (const auto* p : registry().list(Kind::initializer)) names.insert(p->entry.name);
  const std::set<std::string> expected{"uniform",        "normal",         "constant",        "ones",
                                       "zeros",          "eye",            "dirac",           "xavier_uniform",
                                       "xavier_normal",  "kaiming_uniform", "kaiming_normal", "trunc_normal",
                                       "orthogonal",     "sparse"};
  BOOST_TEST(names == expected, boost::test_tools::per_element());
  BOOST_TEST(registry().refusals().empty());
}

BOOST_AUTO_TEST_CASE(calculate_gain_is_pythons) {
  const auto queries = gain_queries();
  const auto& answers = python()["gains"];
  BOOST_REQUIRE_EQUAL(answers.size(), queries.size());
  for (std::size_t i = 0; i < queries.size(); ++i) {
    const auto& [name, param] = queries[i];
    BOOST_TEST_CONTEXT("calculate_gain('" << name << "', " << param.dump() << ")") {
      const auto ours = graft::init::calculate_gain(name, param.is_null() ? 0.01 : param.get<double>());
      if (answers[i].is_null()) {
        BOOST_TEST(!ours.has_value());
      } else {
        BOOST_REQUIRE(ours.has_value());
        BOOST_TEST(*ours == answers[i].get<double>());  // bit for bit
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(random_methods_have_pythons_moments) {
  torch::manual_seed(0);
  for (const auto& c : cases()) {
    BOOST_TEST_CONTEXT(c.id << " " << c.yaml) {
      const auto t = filled(c.yaml, c.shape);
      const auto& py = python()["stats"][c.id];
      const double n = static_cast<double>(t.numel());
      const double mean = t.mean().item<double>(), std = t.std().item<double>();
      const double py_std = py["std"].get<double>();
      BOOST_TEST_MESSAGE(c.id << ": mean " << mean << " (python " << py["mean"].get<double>() << "), std " << std
                              << " (python " << py_std << ", formula " << c.std << ")");
      // Sampling error of the std over >= 200k values is ~0.2%; of the mean, std/sqrt(n).
      BOOST_TEST(std::abs(std - py_std) <= 0.02 * py_std);
      BOOST_TEST(std::abs(std - c.std) <= 0.02 * c.std);
      BOOST_TEST(std::abs(mean - c.mean) <= 6 * std / std::sqrt(n));
      BOOST_TEST(std::abs(py["mean"].get<double>() - c.mean) <= 6 * py_std / std::sqrt(n));
      BOOST_TEST(t.min().item<double>() >= c.lo);
      BOOST_TEST(t.max().item<double>() <= c.hi);
      if (std::isfinite(c.lo) && c.reaches_bounds) {  // and the whole range is used
        BOOST_TEST(t.min().item<double>() <= c.lo + 0.01 * (c.hi - c.lo));
        BOOST_TEST(t.max().item<double>() >= c.hi - 0.01 * (c.hi - c.lo));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(sparse_zeroes_the_same_count_in_every_column) {
  torch::manual_seed(1);
  for (auto [rows, sparsity, zeros] : std::vector<std::tuple<std::int64_t, double, std::int64_t>>{
           {500, 0.1, 50}, {7, 0.25, 2}, {10, 0.0, 0}, {3, 0.9, 3}}) {
    BOOST_TEST_CONTEXT("rows " << rows << ", sparsity " << sparsity) {
      const auto t = filled("{name: sparse, sparsity: " + std::to_string(sparsity) + "}", {rows, 64});
      const auto per_column = (t == 0).sum(0);
      BOOST_TEST((per_column == zeros).all().item<bool>());
      if (zeros < rows) {
        const auto nonzero = t.masked_select(t != 0);
        if (nonzero.numel() > 1000) BOOST_TEST(std::abs(nonzero.std().item<double>() - 0.01) <= 0.001);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(orthogonal_rows_or_columns_are_orthonormal_times_gain) {
  torch::manual_seed(2);
  struct O { std::string yaml; std::vector<std::int64_t> shape; double gain; };
  for (const auto& o : std::vector<O>{{"orthogonal", {128, 256}, 1.0},
                                      {"orthogonal", {256, 128}, 1.0},
                                      {"{name: orthogonal, gain: 2}", {64, 32, 3, 3}, 2.0},
                                      {"{name: orthogonal, gain_for: tanh}", {300, 20, 2}, 5.0 / 3},
                                      {"orthogonal", {50, 50}, 1.0}}) {
    BOOST_TEST_CONTEXT(o.yaml << " on " << torch::IntArrayRef(o.shape)) {
      auto t = torch::empty(o.shape, torch::kDouble);
      make(o.yaml)(t);
      const auto w = t.reshape({o.shape[0], -1});
      const auto gram = w.size(0) <= w.size(1) ? w.mm(w.t()) : w.t().mm(w);
      const auto eye = torch::eye(gram.size(0), torch::kDouble) * (o.gain * o.gain);
      BOOST_TEST((gram - eye).abs().max().item<double>() < 1e-10);
    }
  }
  auto f = torch::empty({100, 40});  // float tensors too, to float precision
  make("orthogonal")(f);
  BOOST_TEST((f.t().mm(f) - torch::eye(40)).abs().max().item<double>() < 1e-5);
}

BOOST_AUTO_TEST_CASE(constant_ones_zeros_eye_are_exact) {
  BOOST_TEST(torch::equal(filled("{name: constant, val: 3.5}", {3, 4}), torch::full({3, 4}, 3.5)));
  BOOST_TEST(torch::equal(filled("{name: constant, val: -2}", {5}), torch::full({5}, -2.0)));
  BOOST_TEST(torch::equal(filled("ones", {2, 3, 4}), torch::ones({2, 3, 4})));
  BOOST_TEST(torch::equal(filled("zeros", {7}), torch::zeros({7})));
  BOOST_TEST(torch::equal(filled("{name: zeros}", {}), torch::zeros({})));
  BOOST_TEST(torch::equal(filled("eye", {3, 5}), torch::eye(3, 5)));
  BOOST_TEST(torch::equal(filled("eye", {5, 3}), torch::eye(5, 3)));
}

BOOST_AUTO_TEST_CASE(dirac_matches_python_with_groups) {
  const auto& answers = python()["dirac"];
  const auto queries = dirac_cases();
  BOOST_REQUIRE_EQUAL(answers.size(), queries.size());
  for (std::size_t i = 0; i < queries.size(); ++i) {
    const auto& [shape, groups] = queries[i];
    BOOST_TEST_CONTEXT(torch::IntArrayRef(shape) << " groups " << groups) {
      const auto t = filled("{name: dirac, groups: " + std::to_string(groups) + "}", shape);
      const auto expected = torch::tensor(answers[i].get<std::vector<float>>()).reshape(shape);
      BOOST_TEST(torch::equal(t, expected));
    }
  }
}

BOOST_AUTO_TEST_CASE(parameters_that_require_grad_and_doubles_are_filled) {
  torch::nn::Linear linear(64, 32);
  auto& w = linear->weight;  // a leaf that requires grad, as graft's own calls see it
  make("xavier_uniform")(w);
  BOOST_TEST(w.abs().max().item<double>() <= std::sqrt(6.0 / 96));
  make("orthogonal")(w);
  BOOST_TEST(w.requires_grad());
  auto d = torch::empty({300, 300}, torch::kDouble);
  make("kaiming_normal")(d);
  BOOST_TEST(d.dtype() == torch::kDouble);
  BOOST_TEST(std::abs(d.std().item<double>() - std::sqrt(2.0 / 300)) < 0.03 * std::sqrt(2.0 / 300));
  auto empty = torch::empty({0, 5});  // nothing to fill, as in Python
  make("kaiming_uniform")(empty);
  make("orthogonal")(empty);
}

BOOST_AUTO_TEST_CASE(bad_recipes_fail_at_their_key) {
  auto config_error = [](const std::string& yaml) {
    auto e = one_line_error_of([&] { make(yaml); });
    BOOST_TEST(e.exit_code() == 2);
    BOOST_TEST_MESSAGE(yaml << " -> " << e.what());
    return std::string(e.what());
  };
  BOOST_TEST(config_error("name: kaiming_normal\nmode: fan_avg\n") ==
             "test.yaml:2:7: mode: must be fan_in or fan_out, got 'fan_avg'");
  BOOST_TEST(config_error("name: normal\nstd: -1\n") == "test.yaml:2:6: std: must be > 0, got -1");
  BOOST_TEST(contains(config_error("name: constant\n"), "missing required key 'val'"));
  BOOST_TEST(contains(config_error("name: sparse\nsparsity: 1\n"), "sparsity: must be in [0, 1), got 1"));
  BOOST_TEST(contains(config_error("name: sparse\n"), "missing required key 'sparsity'"));
  BOOST_TEST(contains(config_error("{name: uniform, a: 2}"), "a: needs a < b, got a=2, b=1"));
  BOOST_TEST(contains(config_error("{name: uniform, a: 1, b: 1}"), "b: needs a < b"));
  BOOST_TEST(contains(config_error("{name: trunc_normal, a: 3}"), "a: needs a < b, got a=3, b=2"));
  BOOST_TEST(contains(config_error("{name: trunc_normal, std: 0}"), "std: must be > 0, got 0"));
  BOOST_TEST(contains(config_error("{name: normal, std: .nan}"), "std: must be a finite number"));
  BOOST_TEST(contains(config_error("{name: normal, mean: .inf}"), "mean: must be a finite number"));
  BOOST_TEST(contains(config_error("{name: kaiming_uniform, nonlinearity: gelu}"),
                      "nonlinearity: unsupported nonlinearity 'gelu'"));
  BOOST_TEST(contains(config_error("{name: xavier_uniform, gain_for: relu6}"),
                      "gain_for: unsupported nonlinearity 'relu6' (did you mean 'relu'?)"));
  BOOST_TEST(contains(config_error("{name: xavier_uniform, gain_for: relu, gain: 2}"),
                      "gain_for: give either gain or gain_for, not both"));
  BOOST_TEST(contains(config_error("{name: orthogonal, param: 0.2}"), "param: is only used with gain_for"));
  BOOST_TEST(contains(config_error("{name: xavier_normal, gain: 0}"), "gain: must be > 0, got 0"));
  BOOST_TEST(contains(config_error("{name: dirac, groups: 0}"), "groups: must be >= 1, got 0"));
  BOOST_TEST(contains(config_error("{name: kaiming_normal, nonlinear: relu}"), "did you mean 'nonlinearity'"));
  BOOST_TEST(contains(config_error("{name: normal, std: big}"), "std"));
}

BOOST_AUTO_TEST_CASE(a_tensor_of_the_wrong_rank_is_one_line_naming_method_and_shape) {
  auto call_error = [](const std::string& yaml, std::vector<std::int64_t> shape) {
    const auto init = make(yaml);  // the recipe itself is fine
    auto t = torch::zeros(shape);
    auto e = one_line_error_of([&] { init(t); });
    BOOST_TEST(e.exit_code() == 2);
    return std::string(e.what());
  };
  BOOST_TEST(call_error("xavier_uniform", {64}) == "xavier_uniform needs a tensor with at least 2 dimensions, got [64]");
  BOOST_TEST(call_error("kaiming_normal", {}) == "kaiming_normal needs a tensor with at least 2 dimensions, got []");
  BOOST_TEST(call_error("orthogonal", {10}) == "orthogonal needs a tensor with at least 2 dimensions, got [10]");
  BOOST_TEST(call_error("eye", {2, 3, 4}) == "eye needs a 2-D tensor, got [2, 3, 4]");
  BOOST_TEST(call_error("{name: sparse, sparsity: 0.5}", {4, 4, 4}) == "sparse needs a 2-D tensor, got [4, 4, 4]");
  BOOST_TEST(call_error("dirac", {3, 3}) == "dirac needs a tensor with 3 to 5 dimensions, got [3, 3]");
  BOOST_TEST(call_error("dirac", {1, 1, 1, 1, 1, 1}) ==
             "dirac needs a tensor with 3 to 5 dimensions, got [1, 1, 1, 1, 1, 1]");
  BOOST_TEST(call_error("{name: dirac, groups: 4}", {6, 3, 3, 3}) ==
             "dirac with groups=4 needs dimension 0 divisible by 4, got [6, 3, 3, 3]");
}
