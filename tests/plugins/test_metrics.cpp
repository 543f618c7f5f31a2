// The loss and metric plugins (plugins/metrics) against Python: cross_entropy and nll values
// and gradients as torch.nn.functional computes them, top-k accuracy as torch.topk (and a
// stable torch.sort where logits tie), the confusion matrix as numpy's bincount; then
// accumulation, reset(), the reports and the errors a recipe or a bad batch gets.
#define BOOST_TEST_MODULE metrics
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <fstream>

#include "graft/metrics.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "support/plugins.h"
#include "support/run.h"

using graft::Kind;
using graft::test::contains;
using json = nlohmann::json;
using graft::test::registry;

namespace {

std::shared_ptr<graft::Loss> loss(const std::string& spec) {
  return registry().create<Kind::loss>(graft::test::yaml(spec));
}
std::shared_ptr<graft::Metric> metric(const std::string& spec) {
  return registry().create<Kind::metric>(graft::test::yaml(spec));
}

// one_line_error_of(), also logging the message.
template <class F> graft::Error error_of(F&& f) {
  auto e = graft::test::one_line_error_of(std::forward<F>(f));
  BOOST_TEST_MESSAGE(e.what());
  return e;
}

json flat(const torch::Tensor& t) {
  const auto d = t.to(torch::kDouble).contiguous();
  json a = json::array();
  for (std::int64_t i = 0; i < d.numel(); ++i) {
    const double v = d.data_ptr<double>()[i];
    a.push_back(std::isnan(v) ? json(nullptr) : json(v));
  }
  return a;
}

json flat_int(const torch::Tensor& t) {
  const auto d = t.to(torch::kLong).contiguous();
  return json(std::vector<std::int64_t>(d.data_ptr<std::int64_t>(), d.data_ptr<std::int64_t>() + d.numel()));
}

// --- losses ---------------------------------------------------------------------------------

struct LossCase {
  std::string fn;
  torch::ScalarType dtype;
  double smoothing;
  bool weighted, ignoring;
  torch::Tensor x, t;
  std::vector<double> weight;
  std::int64_t ignore_index = -100;

  std::string yaml() const {
    std::ostringstream s;
    s << "{name: " << fn;
    if (fn == "cross_entropy") s << ", label_smoothing: " << smoothing;
    if (weighted) s << ", weight: " << json(weight).dump();
    if (ignoring) s << ", ignore_index: " << ignore_index;
    return s.str() + "}";
  }
  std::string id() const { return yaml() + (dtype == torch::kFloat ? " float32" : " float64"); }
};

std::vector<LossCase> loss_cases() {
  std::vector<LossCase> cases;
  torch::manual_seed(1);
  const std::int64_t n = 37, k = 7;
  const std::vector<double> weight{0.5, 2.0, 1.0, 0.0, 3.25, 1.5, 0.75};
  for (auto dtype : {torch::kFloat, torch::kDouble})
    for (double e : {0.0, 0.1})
      for (bool weighted : {false, true})
        for (bool ignoring : {false, true}) {
          LossCase c{"cross_entropy", dtype, e, weighted, ignoring, 3 * torch::randn({n, k}, dtype),
                     torch::randint(k, {n}, torch::kLong), weight};
          if (ignoring) {
            c.ignore_index = 5;  // a real class index: its samples are left out, not its logit column
            c.t.index_put_({torch::arange(0, n, 4)}, 5);
          }
          cases.push_back(c);
        }
  for (auto dtype : {torch::kFloat, torch::kDouble})
    for (bool weighted : {false, true}) {
      LossCase c{"nll", dtype, 0, weighted, true, torch::randn({n, k}, dtype).log_softmax(1),
                 torch::randint(k, {n}, torch::kLong), weight};
      c.ignore_index = 2;
      cases.push_back(c);
    }
  return cases;
}

// --- metrics --------------------------------------------------------------------------------

struct MetricCase {
  std::string id;
  torch::Tensor x, t;
  std::vector<std::int64_t> topk{1, 5};
};

std::vector<MetricCase> metric_cases() {
  torch::manual_seed(2);
  std::vector<MetricCase> cases;
  cases.push_back({"float32 no ties", torch::randn({500, 10}), torch::randint(10, {500}, torch::kLong), {1, 2, 5}});
  // Small integers tie everywhere; a few NaNs rank above everything, as in torch.sort.
  auto tied = torch::randint(0, 3, {400, 6}, torch::kDouble);
  tied.index_put_({torch::arange(0, 400, 37), torch::arange(0, 400, 37) % 6}, NAN);
  tied.index_put_({torch::arange(5, 400, 53), 2}, NAN);
  cases.push_back({"float64 ties and NaN", tied, torch::randint(6, {400}, torch::kLong), {1, 2, 3, 6}});
  cases.push_back({"3 classes", torch::randn({90, 3}), torch::randint(3, {90}, torch::kLong), {1, 5}});
  return cases;
}

const json& python() {
  static const json answers = [] {
    json q{{"losses", json::array()}, {"metrics", json::array()}};
    for (const auto& c : loss_cases())
      q["losses"].push_back({{"fn", c.fn},
                             {"dtype", c.dtype == torch::kFloat ? "float32" : "float64"},
                             {"n", c.x.size(0)},
                             {"k", c.x.size(1)},
                             {"x", flat(c.x)},
                             {"t", flat_int(c.t)},
                             {"weight", c.weighted ? json(c.weight) : json(nullptr)},
                             {"smoothing", c.smoothing},
                             {"ignore_index", c.ignore_index}});
    for (const auto& c : metric_cases())
      q["metrics"].push_back(
          {{"n", c.x.size(0)}, {"k", c.x.size(1)}, {"x", flat(c.x)}, {"t", flat_int(c.t)}, {"topk", c.topk}});
    const auto dir = graft::test::temp_dir("metrics");
    const auto file = dir / "queries.json";
    std::ofstream(file) << q.dump();
    const auto r = graft::test::run(std::string(GRAFT_PYTHON) + " " + GRAFT_SOURCE_DIR +
                                    "/tests/plugins/metrics_oracle.py " + file.string());
    std::filesystem::remove_all(dir);
    if (r.code != 0) throw std::runtime_error("metrics_oracle.py failed: " + r.err);
    return json::parse(r.out);
  }();
  return answers;
}

}  // namespace

BOOST_AUTO_TEST_CASE(plugins_are_registered) {
  std::set<std::string> losses, metrics;
  for (const auto* p : registry().list(Kind::loss)) losses.insert(p->entry.name);
  for (const auto* p : registry().list(Kind::metric)) metrics.insert(p->entry.name);
  BOOST_TEST((losses.count("cross_entropy") && losses.count("nll")));
  BOOST_TEST((metrics.count("accuracy") && metrics.count("per_class_accuracy") && metrics.count("confusion_matrix")));
  BOOST_TEST(registry().refusals().empty());
}

BOOST_AUTO_TEST_CASE(losses_and_gradients_are_pythons) {
  const auto cases = loss_cases();
  const auto& answers = python()["losses"];
  BOOST_REQUIRE_EQUAL(answers.size(), cases.size());
  double worst32 = 0, worst64 = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const auto& py = answers[i];
    BOOST_TEST_CONTEXT(c.id()) {
      const bool f32 = c.dtype == torch::kFloat;
      const double tol = f32 ? 1e-6 : 1e-12;
      auto x = c.x.clone().requires_grad_();
      const auto value = loss(c.yaml())->forward(x, c.t);
      BOOST_TEST(value.dim() == 0);
      BOOST_TEST((value.scalar_type() == c.dtype));
      value.backward();
      const double ours = value.item<double>(), theirs = py["loss"].get<double>();
      BOOST_TEST(std::isfinite(ours));
      const double rel = std::abs(ours - theirs) / std::abs(theirs);
      BOOST_TEST(rel <= tol);
      if (py.contains("formula") && !f32) BOOST_TEST(std::abs(ours - py["formula"].get<double>()) <= 1e-12 * theirs);
      // Gradients: relative to the largest entry (ignored samples' rows are exactly 0).
      const auto g = x.grad().to(torch::kDouble).flatten();
      const auto pg = torch::tensor(py["grad"].get<std::vector<double>>(), torch::kDouble);
      BOOST_REQUIRE_EQUAL(g.numel(), pg.numel());
      const double scale = pg.abs().max().item<double>();
      const double grel = (g - pg).abs().max().item<double>() / scale;
      BOOST_TEST(grel <= tol);
      if (c.ignoring) BOOST_TEST((g.view({x.size(0), -1}).index({c.t == c.ignore_index}) == 0).all().item<bool>());
      (f32 ? worst32 : worst64) = std::max({f32 ? worst32 : worst64, rel, grel});
    }
  }
  BOOST_TEST_MESSAGE("largest relative difference to Python: float32 " << worst32 << ", float64 " << worst64);
}

BOOST_AUTO_TEST_CASE(cross_entropy_defaults_are_plain_mean) {
  const auto x = torch::randn({8, 4}, torch::kDouble), t = torch::randint(4, {8}, torch::kLong);
  const auto expected = -x.log_softmax(1).gather(1, t.unsqueeze(1)).mean();
  BOOST_TEST(std::abs(loss("cross_entropy")->forward(x, t).item<double>() - expected.item<double>()) <= 1e-14);
  // int32 targets are fine too.
  BOOST_TEST(std::abs(loss("cross_entropy")->forward(x, t.to(torch::kInt)).item<double>() - expected.item<double>()) <=
             1e-14);
}

BOOST_AUTO_TEST_CASE(accuracy_is_torch_topk_and_confusion_is_numpy_bincount) {
  const auto cases = metric_cases();
  const auto& answers = python()["metrics"];
  BOOST_REQUIRE_EQUAL(answers.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const auto& py = answers[i];
    const bool ties = contains(c.id, "ties");
    BOOST_TEST_CONTEXT(c.id) {
      auto acc = metric("{name: accuracy, topk: " + json(c.topk).dump() + "}");
      auto per_class = metric("per_class_accuracy");
      auto confusion = metric("confusion_matrix");
      for (auto& m : {acc, per_class, confusion}) m->update(c.x, c.t);
      const auto r = acc->compute();
      const auto n = static_cast<double>(c.x.size(0));
      const auto k = c.x.size(1);
      std::size_t reported = 0;
      for (auto kk : c.topk) {
        BOOST_TEST_CONTEXT("top" << kk) {
          const auto key = "top" + std::to_string(kk);
          if (kk > k) {
            BOOST_TEST(!r.count(key));  // k above the class count: not reported
            continue;
          }
          ++reported;
          BOOST_REQUIRE(r.count(key));
          const auto& counts = ties ? py["sorted"] : py["topk"];
          BOOST_TEST(r.at(key) == counts[std::to_string(kk)].get<double>() / n);
          if (!ties) BOOST_TEST(py["topk"][std::to_string(kk)] == py["sorted"][std::to_string(kk)]);
          if (kk == k) BOOST_TEST(r.at(key) == 1.0);
        }
      }
      BOOST_TEST(r.size() == reported);
      // The confusion matrix, cell by cell, and top1 is its trace.
      const auto report = confusion->report({});
      const auto expected = torch::tensor(py["confusion"].get<std::vector<std::int64_t>>()).view({k, k});
      BOOST_TEST(expected.sum().item<std::int64_t>() == c.x.size(0));
      BOOST_TEST(r.at("top1") == expected.trace().item<double>() / n);
      std::istringstream lines(report);
      std::string line;
      std::getline(lines, line);  // title
      std::getline(lines, line);  // header
      for (std::int64_t row = 0; row < k; ++row) {
        BOOST_REQUIRE(std::getline(lines, line));
        std::istringstream cells(line);
        std::string label;
        cells >> label;
        BOOST_TEST(label == std::to_string(row));
        for (std::int64_t col = 0; col < k; ++col) {
          std::int64_t v = -1;
          cells >> v;
          BOOST_TEST(v == expected[row][col].item<std::int64_t>(), "cell " << row << "," << col);
        }
      }
      BOOST_TEST(confusion->compute().empty());
      // Per-class accuracy: mean over the classes with samples.
      double sum = 0;
      int seen = 0;
      for (const auto& a : py["per_class"])
        if (!a.is_null()) sum += a.get<double>(), ++seen;
      BOOST_TEST(std::abs(per_class->compute().at("mean_class_acc") - sum / seen) <= 1e-14);
    }
  }
}

BOOST_AUTO_TEST_CASE(batches_accumulate_to_one_big_batch_and_reset_clears) {
  torch::manual_seed(3);
  const auto x = torch::randn({250, 8}), t = torch::randint(8, {250}, torch::kLong);
  const std::vector<std::string> classes{"a", "b", "c", "d", "e", "f", "g", "h"};
  for (const auto* spec : {"{name: accuracy, topk: [1, 3, 5]}", "per_class_accuracy", "confusion_matrix"}) {
    BOOST_TEST_CONTEXT(spec) {
      auto whole = metric(spec), parts = metric(spec);
      whole->update(x, t);
      // Uneven batches, one empty, with float64 logits and a grad-requiring tensor.
      std::int64_t at = 0;
      for (std::int64_t size : {1, 0, 64, 100, 85}) {
        auto xb = x.slice(0, at, at + size).to(torch::kDouble).requires_grad_();
        parts->update(xb, t.slice(0, at, at + size));
        at += size;
      }
      BOOST_TEST(parts->compute() == whole->compute());
      BOOST_TEST(parts->report(classes) == whole->report(classes));
      parts->reset();
      BOOST_TEST(parts->compute().empty());
      BOOST_TEST(parts->report(classes).empty());
      // After reset() the class count is free again.
      parts->update(torch::tensor({{0.0, 1.0}, {2.0, 1.0}}), torch::tensor({1, 1}));
      if (contains(spec, "accuracy")) BOOST_TEST(!parts->compute().empty());
    }
  }
  auto acc = metric("accuracy");
  acc->update(torch::tensor({{0.0, 1.0, 0.5}, {2.0, 1.0, 3.0}}), torch::tensor({1, 1}));
  BOOST_TEST(acc->compute() == (std::map<std::string, double>{{"top1", 0.5}}));  // no top5 with 3 classes
}

BOOST_AUTO_TEST_CASE(reports_are_tables_with_class_names) {
  // true 0 -> predicted 0, 0, 1; true 1 -> 1; true 2 -> 0, 2
  const auto x = torch::tensor({{5.0, 1.0, 0.0}, {2.0, 1.0, 0.0}, {0.0, 3.0, 1.0}, {0.0, 4.0, 1.0}, {9.0, 0.0, 1.0},
                                {0.0, 0.0, 1.0}});
  const auto t = torch::tensor({0, 0, 0, 1, 2, 2});
  const std::vector<std::string> names{"cat", "dog", "hippopotamus"};
  auto cm = metric("confusion_matrix");
  cm->update(x, t);
  BOOST_TEST(cm->report(names) ==
             "confusion matrix over 6 samples (rows: true class, columns: predicted)\n"
             "                       cat           dog  hippopotamus\n"
             "cat                      2             1             0\n"
             "dog                      0             1             0\n"
             "hippopotamus             1             0             1\n");
  auto pc = metric("per_class_accuracy");
  pc->update(x, t);
  BOOST_TEST(std::abs(pc->compute().at("mean_class_acc") - (2.0 / 3 + 1 + 0.5) / 3) <= 1e-15);
  BOOST_TEST(pc->report(names) ==
             "per-class accuracy (top-1) over 6 samples\n"
             "class          correct     total  accuracy\n"
             "cat                  2         3    0.6667\n"
             "dog                  1         1    1.0000\n"
             "hippopotamus         1         2    0.5000\n"
             "mean over the classes with samples: 0.7222\n");
  // Missing names fall back to the index.
  BOOST_TEST(contains(pc->report({"cat"}), "\n2 "));
  // Many classes: the largest confusions instead of a 40 x 40 table.
  auto big = metric("confusion_matrix");
  auto xb = torch::zeros({3, 40});
  xb.index_put_({0, 7}, 1.0);
  xb.index_put_({1, 7}, 1.0);
  xb.index_put_({2, 3}, 1.0);
  big->update(xb, torch::tensor({3, 3, 3}));
  const auto r = big->report({});
  BOOST_TEST(contains(r, "40 classes, too many for a table"));
  BOOST_TEST(contains(r, "  3 -> 7: 2\n"));
  BOOST_TEST(!contains(r, "3 -> 3"));
}

BOOST_AUTO_TEST_CASE(bad_batches_are_one_line_usage_errors) {
  const auto x = torch::randn({4, 10});
  for (const auto* spec : {"cross_entropy", "nll", "accuracy", "per_class_accuracy", "confusion_matrix"}) {
    BOOST_TEST_CONTEXT(spec) {
      const bool is_loss = std::string(spec) == "cross_entropy" || std::string(spec) == "nll";
      auto run = [&](const torch::Tensor& out, const torch::Tensor& target) {
        if (is_loss) loss(spec)->forward(out, target);
        else metric(spec)->update(out, target);
      };
      auto e = error_of([&] { run(x, torch::tensor({0, 3, 10, 1})); });
      BOOST_TEST((e.kind() == graft::Error::Kind::usage));
      BOOST_TEST(contains(e.what(), std::string(is_loss ? "loss '" : "metric '") + spec + "'"));
      BOOST_TEST(contains(e.what(), "target 10 (sample 2 of the batch) is not a class of the model's 10 outputs"));
      BOOST_TEST(contains(error_of([&] { run(x, torch::tensor({0, -1, 2, 1})); }).what(), "target -1"));
      BOOST_TEST(contains(error_of([&] { run(x, torch::tensor({0, 1})); }).what(), "expects targets [N] = [4]"));
      BOOST_TEST(contains(error_of([&] { run(x, torch::zeros({4})); }).what(), "integer class indices"));
      BOOST_TEST(contains(error_of([&] { run(x.flatten(), torch::zeros({40}, torch::kLong)); }).what(),
                          "expects floating-point logits [N, K]"));
    }
  }
  // ignore_index is the one target outside [0, K) that a loss takes.
  BOOST_TEST(std::isfinite(loss("cross_entropy")->forward(x, torch::tensor({0, -100, 2, 1})).item<double>()));
  auto e = error_of([&] { loss("{name: cross_entropy, weight: [1, 2, 3]}")->forward(x, torch::tensor({0, 1, 2, 1})); });
  BOOST_TEST((e.kind() == graft::Error::Kind::usage));
  BOOST_TEST(contains(e.what(), "loss 'cross_entropy': 3 class weights for a model with 10 outputs"));
  auto m = metric("accuracy");
  m->update(x, torch::tensor({0, 1, 2, 3}));
  BOOST_TEST(contains(error_of([&] { m->update(torch::randn({2, 7}), torch::tensor({0, 1})); }).what(),
                      "metric 'accuracy': this batch has 7 classes, the earlier ones had 10"));
}

BOOST_AUTO_TEST_CASE(bad_keys_are_located_usage_errors) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"{name: cross_entropy, label_smoothing: 1.5}", "test.yaml:1:40: label_smoothing: must be in [0, 1], got 1.5"},
      {"{name: cross_entropy, label_smoothing: -0.1}", "label_smoothing: must be in [0, 1]"},
      {"{name: cross_entropy, weight: [1, -2]}", "test.yaml:1:35: weight.1: must be >= 0, got -2"},
      {"{name: nll, weight: [0, 0]}", "weight: at least one class weight must be > 0"},
      {"{name: cross_entropy, weight: []}", "weight: must not be an empty list"},
      {"{name: nll, weight: [1, .inf]}", "test.yaml:1:25: weight.1: must be a finite number, got .inf"},
      {"{name: cross_entropy, weights: [1]}", "unknown key 'weights'"},
      {"{name: cross_entropy, label_smoothing: lots}", "label_smoothing"},
      {"{name: accuracy, topk: [1, 0]}", "test.yaml:1:28: topk.1: must be >= 1, got 0"},
      {"{name: accuracy, topk: [5, 1, 5]}", "topk.2: k = 5 is listed twice"},
      {"{name: accuracy, topk: []}", "topk: must not be an empty list"},
      {"{name: accuracy, top_k: [1]}", "did you mean 'topk'"},
      {"{name: confusion_matrix, normalize: true}", "unknown key 'normalize'"},
  };
  for (const auto& [spec, expected] : cases) {
    BOOST_TEST_CONTEXT(spec) {
      const auto e = error_of([&] {
        auto c = graft::test::yaml(spec);
        if (contains(spec, "cross_entropy") || contains(spec, "nll")) registry().create<Kind::loss>(c);
        else registry().create<Kind::metric>(c);
      });
      BOOST_TEST((e.kind() == graft::Error::Kind::usage));
      BOOST_TEST(contains(e.what(), "test.yaml:1:"));
      BOOST_TEST(contains(e.what(), expected));
    }
  }
}
