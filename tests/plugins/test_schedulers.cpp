// The scheduler plugins (plugins/schedulers) against Python's torch.optim.lr_scheduler:
// the lr (and one_cycle's momentum) of two parameter groups after every scheduler.step(),
// reduce_on_plateau on scripted metrics, a resumed plateau run, and the recipe errors.
#define BOOST_TEST_MODULE schedulers
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "graft/schedule.h"
#include "support/plugins.h"
#include "support/run.h"

using graft::Kind;
using graft::test::contains;
using json = nlohmann::json;
using graft::test::one_line_error_of;
using graft::test::registry;

namespace {

std::shared_ptr<graft::Scheduler> make(const std::string& spec, std::int64_t total = 60) {
  auto s = registry().create<Kind::scheduler>(graft::test::yaml(spec));
  graft::ScheduleInfo info;
  info.total = total;
  s->setup(info);
  return s;
}

const std::vector<double> lrs{0.1, 0.03};
constexpr int steps = 60;
// Python's lr_scheduler steps recursively (lr *= gamma, the cosine ratio); graft uses the
// closed forms. Measured worst case over all cases below: ~2e-14.
constexpr double tolerance = 1e-12;

double rel_diff(double a, double b) {
  if (a == b) return 0;
  return std::abs(a - b) / std::max(std::abs(a), std::abs(b));
}

struct Case {
  std::string id, yaml, python;
  std::int64_t total = steps;  // ScheduleInfo::total
  int n = steps;                // scheduler steps asked of Python
  bool momentum = false;        // SGD with momentum 0.9 in both groups
};

std::vector<Case> cases() {
  const std::string seq_cos = "SequentialLR(opt, [LinearLR(opt, start_factor=";
  return {
      {"step", "{name: step, step_size: 7}", "StepLR(opt, step_size=7)"},
      {"step_half", "{name: step, step_size: 3, gamma: 0.5}", "StepLR(opt, step_size=3, gamma=0.5)"},
      {"step_every", "{name: step, step_size: 1, gamma: 0.9}", "StepLR(opt, step_size=1, gamma=0.9)"},
      {"multistep", "{name: multistep, milestones: [10, 25, 40]}", "MultiStepLR(opt, milestones=[10, 25, 40])"},
      {"multistep_early", "{name: multistep, milestones: [1, 2, 30], gamma: 0.5}",
       "MultiStepLR(opt, milestones=[1, 2, 30], gamma=0.5)"},
      {"exponential", "{name: exponential, gamma: 0.95}", "ExponentialLR(opt, gamma=0.95)"},
      {"exponential_fast", "{name: exponential, gamma: 0.7}", "ExponentialLR(opt, gamma=0.7)"},
      // past t_max: Python's recursion and graft climb back up, period 2 * t_max
      {"cosine_periodic", "{name: cosine, t_max: 10, eta_min: 0.001}", "CosineAnnealingLR(opt, T_max=10, eta_min=0.001)"},
      {"cosine_to_zero", "{name: cosine, t_max: 7}", "CosineAnnealingLR(opt, T_max=7)"},
      {"cosine_run_length", "cosine", "CosineAnnealingLR(opt, T_max=60)"},
      {"cosine_run_length_eta", "{name: cosine, eta_min: 0.0005}", "CosineAnnealingLR(opt, T_max=40, eta_min=0.0005)", 40},
      {"cosine_warmup", "{name: cosine, warmup: 5, warmup_start_factor: 0.1, eta_min: 0.0001}",
       seq_cos + "0.1, total_iters=5), CosineAnnealingLR(opt, T_max=55, eta_min=0.0001)], milestones=[5])"},
      {"cosine_warmup_default_factor", "{name: cosine, warmup: 3}",
       "SequentialLR(opt, [LinearLR(opt, total_iters=3), CosineAnnealingLR(opt, T_max=57)], milestones=[3])"},
      {"cosine_warmup_periodic", "{name: cosine, warmup: 8, warmup_start_factor: 0.001, t_max: 20, eta_min: 0.002}",
       seq_cos + "0.001, total_iters=8), CosineAnnealingLR(opt, T_max=20, eta_min=0.002)], milestones=[8])"},
      {"one_cycle", "one_cycle", "OneCycleLR(opt, max_lr=[0.1, 0.03], total_steps=60)", steps, steps, true},
      {"one_cycle_linear", "{name: one_cycle, max_lr: 0.5, anneal_strategy: linear, pct_start: 0.25, div_factor: 10, "
                           "final_div_factor: 100, base_momentum: 0.8, max_momentum: 0.9}",
       "OneCycleLR(opt, max_lr=0.5, total_steps=60, anneal_strategy='linear', pct_start=0.25, div_factor=10., "
       "final_div_factor=100., base_momentum=0.8, max_momentum=0.9)",
       steps, steps, true},
      {"one_cycle_three_phase", "{name: one_cycle, three_phase: true, total_steps: 50, pct_start: 0.35}",
       "OneCycleLR(opt, max_lr=[0.1, 0.03], total_steps=50, three_phase=True, pct_start=0.35)", 999, 50, true},
      {"one_cycle_no_momentum", "{name: one_cycle, cycle_momentum: false}",
       "OneCycleLR(opt, max_lr=[0.1, 0.03], total_steps=60, cycle_momentum=False)", steps, steps, true},
      {"linear", "{name: linear, start_factor: 0.25, end_factor: 0.75, total_iters: 10}",
       "LinearLR(opt, start_factor=0.25, end_factor=0.75, total_iters=10)"},
      {"linear_default", "linear", "LinearLR(opt)"},
      {"constant", "{name: constant, factor: 0.5, total_iters: 4}", "ConstantLR(opt, factor=0.5, total_iters=4)"},
      {"constant_default", "constant", "ConstantLR(opt)"},
  };
}

// Scripted metrics: improvements, plateaus with noise, improvements below a relative
// threshold of 1e-4, then a long plateau (enough to reach min_lr).
std::vector<double> loss_curve() {
  std::vector<double> v;
  double x = 2.0;
  auto improve = [&](int n, double f) { for (int i = 0; i < n; ++i) v.push_back(x *= f); };
  auto flat = [&](int n) { for (int i = 0; i < n; ++i) v.push_back(x + 0.001 * (i % 2)); };
  improve(5, 0.9), flat(6), improve(4, 0.99995), improve(3, 0.8), flat(12), improve(2, 0.95), flat(28);
  return v;
}

std::vector<double> accuracy_curve() {
  std::vector<double> v;
  double x = 0.1;
  auto improve = [&](int n, double d) { for (int i = 0; i < n; ++i) v.push_back(x += d); };
  auto flat = [&](int n) { for (int i = 0; i < n; ++i) v.push_back(x - 0.002 * (i % 3)); };
  improve(6, 0.1), flat(5), improve(3, 0.02), flat(7), improve(4, 0.00001), improve(2, 0.06), flat(33);
  return v;
}

struct PlateauCase {
  std::string id, yaml, python;
  std::vector<double> lrs, metrics;
};

std::vector<PlateauCase> plateau_cases() {
  return {
      {"min_rel_cooldown_min_lr", "{name: reduce_on_plateau, factor: 0.5, patience: 2, cooldown: 2, min_lr: 0.004}",
       "ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=2, min_lr=0.004)", lrs, loss_curve()},
      {"min_abs", "{name: reduce_on_plateau, threshold_mode: abs, threshold: 0.01, patience: 3, cooldown: 3}",
       "ReduceLROnPlateau(opt, threshold_mode='abs', threshold=0.01, patience=3, cooldown=3)", lrs, loss_curve()},
      {"min_defaults", "reduce_on_plateau", "ReduceLROnPlateau(opt)", lrs, loss_curve()},
      {"max_rel", "{name: reduce_on_plateau, mode: max, threshold: 0.1, patience: 1, factor: 0.3}",
       "ReduceLROnPlateau(opt, mode='max', threshold=0.1, patience=1, factor=0.3)", lrs, accuracy_curve()},
      {"max_abs", "{name: reduce_on_plateau, mode: max, threshold_mode: abs, threshold: 0.05, patience: 2, factor: 0.2}",
       "ReduceLROnPlateau(opt, mode='max', threshold_mode='abs', threshold=0.05, patience=2, factor=0.2)", lrs,
       accuracy_curve()},
      // the small group's reductions stop at eps, the large one's go on
      {"eps", "{name: reduce_on_plateau, patience: 0, factor: 0.5, eps: 0.001}",
       "ReduceLROnPlateau(opt, patience=0, factor=0.5, eps=0.001)", {0.1, 0.003}, loss_curve()},
  };
}

// Python's answers to everything above, asked once.
const json& python() {
  static const json answers = [] {
    json q = json::object();
    for (const auto& c : cases())
      q[c.id] = {{"make", c.python}, {"lrs", lrs}, {"steps", c.n}, {"momentum", c.momentum ? json(0.9) : json(nullptr)}};
    for (const auto& c : plateau_cases())
      q[c.id] = {{"make", c.python}, {"lrs", c.lrs}, {"steps", c.metrics.size()}, {"metrics", c.metrics}};
    const auto dir = graft::test::temp_dir("sched");
    const auto file = dir / "queries.json";
    std::ofstream(file) << q.dump();
    const auto r = graft::test::run(std::string(GRAFT_PYTHON) + " " + GRAFT_SOURCE_DIR +
                                    "/tests/plugins/scheduler_oracle.py " + file.string());
    std::filesystem::remove_all(dir);
    if (r.code != 0) throw std::runtime_error("scheduler_oracle.py failed: " + r.err);
    return json::parse(r.out);
  }();
  return answers;
}

// Feeds `metrics` from index `from` on and checks each step's lrs against Python.
void follow_python(graft::Scheduler& s, const PlateauCase& c, std::size_t from, std::size_t to) {
  const auto& py = python()[c.id]["lr"];
  for (std::size_t k = from; k < to; ++k) {
    s.observe(c.metrics[k]);
    for (std::size_t g = 0; g < c.lrs.size(); ++g)
      BOOST_TEST(s.lr(c.lrs[g], static_cast<std::int64_t>(k + 1)) == py[k + 1][g].get<double>(),
                 "step " << k + 1 << " group " << g);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_scheduler_is_a_plugin) {
  std::set<std::string> names;
  for (const auto* p : registry().list(Kind::scheduler)) names.insert(p->entry.name);
  const std::set<std::string> expected{"step", "multistep", "exponential", "cosine", "one_cycle",
                                       "reduce_on_plateau", "linear", "constant"};
  BOOST_TEST(names == expected, boost::test_tools::per_element());
  BOOST_TEST(make("one_cycle")->default_interval() == "step");
  BOOST_TEST(make("cosine")->default_interval() == "epoch");
  BOOST_TEST(make("reduce_on_plateau")->monitor() == "val/loss");
  BOOST_TEST(make("{name: reduce_on_plateau, monitor: val/acc, mode: max}")->monitor() == "val/acc");
  BOOST_TEST(make("{name: step, step_size: 2}")->monitor() == "");
  BOOST_TEST(!make("{name: step, step_size: 2}")->momentum(0.9, 3).has_value());
}

BOOST_AUTO_TEST_CASE(lrs_are_pythons) {
  double worst = 0;
  for (const auto& c : cases()) {
    BOOST_TEST_CONTEXT(c.id << ": " << c.yaml << " vs " << c.python) {
      const auto s = make(c.yaml, c.total);
      const auto& py = python()[c.id];
      BOOST_REQUIRE_EQUAL(py["lr"].size(), static_cast<std::size_t>(c.n + 1));
      for (int k = 0; k <= c.n; ++k) {
        for (std::size_t g = 0; g < lrs.size(); ++g) {
          const double ours = s->lr(lrs[g], k), theirs = py["lr"][k][g].get<double>();
          worst = std::max(worst, rel_diff(ours, theirs));
          BOOST_TEST(rel_diff(ours, theirs) <= tolerance, "count " << k << " group " << g << ": " << ours << " vs " << theirs);
          if (!c.momentum) continue;
          const auto m = s->momentum(0.9, k);
          const double py_m = py["momentum"][k][g].get<double>();
          if (c.id == "one_cycle_no_momentum") {
            BOOST_TEST(!m.has_value());
            BOOST_TEST(py_m == 0.9);
          } else {
            BOOST_REQUIRE(m.has_value());
            BOOST_TEST(rel_diff(*m, py_m) <= tolerance, "momentum at count " << k << ": " << *m << " vs " << py_m);
          }
        }
      }
    }
  }
  BOOST_TEST_MESSAGE("worst relative difference from Python: " << worst);
}

BOOST_AUTO_TEST_CASE(cosine_past_t_max_is_periodic) {
  const auto s = make("{name: cosine, t_max: 10, eta_min: 0.001}");
  BOOST_TEST(s->lr(0.1, 10) == 0.001);
  BOOST_TEST(rel_diff(s->lr(0.1, 20), 0.1) <= 1e-15);
  for (int k = 0; k <= 20; ++k) BOOST_TEST(rel_diff(s->lr(0.1, 20 + k), s->lr(0.1, k)) <= 1e-13, "count " << k);
  // with warm-up the peak is at `warmup`, the trough t_max later
  const auto w = make("{name: cosine, warmup: 4, warmup_start_factor: 0.5}", 24);
  BOOST_TEST(w->lr(0.2, 0) == 0.1);
  BOOST_TEST(w->lr(0.2, 4) == 0.2);
  BOOST_TEST(w->lr(0.2, 24) == 0.0);
}

BOOST_AUTO_TEST_CASE(one_cycle_holds_its_final_lr_past_the_cycle) {
  const auto s = make("{name: one_cycle, max_lr: 0.4}", 30);
  const double final_lr = 0.4 / 25 / 1e4;
  BOOST_TEST(rel_diff(s->lr(0.1, 29), final_lr) <= 1e-15);
  for (int k : {31, 45, 1000}) {
    BOOST_TEST(s->lr(0.1, k) == s->lr(0.1, 29));
    BOOST_TEST(*s->momentum(0.9, k) == 0.95);
  }
  // without max_lr each group peaks at its own lr
  const auto own = make("one_cycle", 30);
  BOOST_TEST(rel_diff(own->lr(0.1, 8), 0.1) <= 1e-15);  // end of the warm-up phase: 0.3 * 30 - 1
  BOOST_TEST(rel_diff(own->lr(0.03, 8), 0.03) <= 1e-15);
  BOOST_TEST(rel_diff(own->lr(0.03, 0), 0.03 / 25) <= 1e-15);
}

BOOST_AUTO_TEST_CASE(reduce_on_plateau_is_pythons) {
  for (const auto& c : plateau_cases()) {
    BOOST_TEST_CONTEXT(c.id << ": " << c.yaml) {
      const auto s = make(c.yaml);
      for (std::size_t g = 0; g < c.lrs.size(); ++g) BOOST_TEST(s->lr(c.lrs[g], 0) == c.lrs[g]);
      follow_python(*s, c, 0, c.metrics.size());  // bit for bit: the same operations as Python
    }
  }
  // the scenarios do what they are meant to
  const auto& py = python();
  BOOST_TEST(py["min_rel_cooldown_min_lr"]["lr"][steps][0].get<double>() == 0.004);
  BOOST_TEST(py["min_rel_cooldown_min_lr"]["lr"][steps][1].get<double>() == 0.004);
  // eps stops each group where its next reduction would be smaller: 6 reductions for 0.1, 1 for 0.003
  BOOST_TEST(py["eps"]["lr"][steps][0].get<double>() == 0.1 * std::pow(0.5, 6));
  BOOST_TEST(py["eps"]["lr"][steps][1].get<double>() == 0.0015);
  // and the default eps (1e-8) stops max_rel below it
  BOOST_TEST(py["max_rel"]["lr"][steps][0].get<double>() < 1e-8);
  BOOST_TEST(py["max_rel"]["lr"][steps][0].get<double>() * 0.7 > py["max_rel"]["lr"][steps][0].get<double>() - 1e-8);
  for (const char* id : {"min_abs", "min_defaults", "max_rel", "max_abs"}) {
    std::set<double> seen;
    for (const auto& l : py[id]["lr"]) seen.insert(l[0].get<double>());
    BOOST_TEST(seen.size() >= 4u, id << " reduces " << seen.size() - 1 << " times");
  }
}

// A scheduler's saved state (graft::State) as numbers by key, to compare.
std::map<std::string, double> saved_state(const graft::Scheduler& s) {
  graft::State state;
  s.save_state(state);
  std::map<std::string, double> out;
  for (const auto& k : state.keys()) out[k] = state.get<double>(k);
  return out;
}

graft::State as_state(const std::map<std::string, double>& m) {
  graft::State s;
  for (const auto& [k, v] : m) s.set(k, v);
  return s;
}

BOOST_AUTO_TEST_CASE(reduce_on_plateau_resumes_exactly) {
  for (const auto& c : plateau_cases()) {
    for (std::size_t at : {0, 7, 20, 31}) {
      BOOST_TEST_CONTEXT(c.id << " resumed after " << at << " steps") {
        const auto first = make(c.yaml);
        follow_python(*first, c, 0, at);
        const auto state = saved_state(*first);
        BOOST_TEST(state.count("best") == (at > 0 ? 1u : 0u));
        BOOST_TEST(state.at("last_epoch") == static_cast<double>(at));
        const auto resumed = make(c.yaml);
        resumed->load_state(as_state(state));
        BOOST_TEST((saved_state(*resumed) == state));
        follow_python(*resumed, c, at, c.metrics.size());
        follow_python(*first, c, at, c.metrics.size());
        BOOST_TEST((saved_state(*resumed) == saved_state(*first)));
      }
    }
  }
  const auto s = make("reduce_on_plateau");
  const auto e = one_line_error_of([&] { s->load_state(as_state({{"best", 1.0}})); });
  BOOST_TEST(contains(e.what(), "no 'num_bad_epochs' in the saved state"), e.what());
  const auto f = one_line_error_of([&] {
    s->load_state(as_state({{"num_bad_epochs", 1.5}, {"cooldown_counter", 0}, {"reductions", 0}, {"last_epoch", 0}}));
  });
  BOOST_TEST(contains(f.what(), "'num_bad_epochs' is not a count"), f.what());
}

BOOST_AUTO_TEST_CASE(bad_keys_fail_at_their_line) {
  struct Bad { std::string yaml, message; std::int64_t total = 60; };
  const std::vector<Bad> bad{
      {"name: step\nstep_size: 3\ngamma: 0\n", "test.yaml:3:8: gamma: must be > 0, got 0"},
      {"name: step\nstep_size: 0\n", "test.yaml:2:12: step_size: must be >= 1, got 0"},
      {"name: step\ngamma: 0.5\n", "missing required key 'step_size'"},
      {"name: step\nstep_sise: 3\n", "did you mean 'step_size'"},
      {"name: exponential\ngamma: -0.5\n", "test.yaml:2:8: gamma: must be > 0, got -0.5"},
      {"name: multistep\nmilestones: []\n", "test.yaml:2:13: milestones: must not be an empty list"},
      {"name: multistep\nmilestones: [5, 10, 10]\n", "test.yaml:2:13: milestones: must be strictly increasing; 10 follows 10"},
      {"name: multistep\nmilestones: [0, 10]\n", "test.yaml:2:14: milestones.0: must be >= 1, got 0"},
      {"name: cosine\nt_max: 0\n", "test.yaml:2:8: t_max: must be >= 1, got 0"},
      {"name: cosine\nwarmup: 10\n", "test.yaml:1:1: scheduler cosine: t_max defaults to the run's 10 scheduler steps minus 10 of warm-up", 10},
      {"name: cosine\nwarmup_start_factor: 1.5\n", "warmup_start_factor: must be in [0, 1], got 1.5"},
      {"name: one_cycle\npct_start: 1\n", "test.yaml:2:12: pct_start: must be in (0, 1), got 1"},
      {"name: one_cycle\npct_start: 0\n", "pct_start: must be in (0, 1), got 0"},
      {"name: one_cycle\nanneal_strategy: cosine\n", "test.yaml:2:18: anneal_strategy: must be one of: cos, linear; got 'cosine'"},
      {"name: one_cycle\nmax_lr: 0\n", "max_lr: must be > 0, got 0"},
      {"name: one_cycle\ntotal_steps: 10\npct_start: 0.1\n", "test.yaml:2:14: total_steps: pct_start 0.1 of 10 steps leaves a phase"},
      {"name: one_cycle\nthree_phase: true\ntotal_steps: 10\npct_start: 0.55\n", "leaves a phase of the three-phase one_cycle"},
      {"name: one_cycle\n", "test.yaml:1:1: scheduler one_cycle: total_steps defaults to the run's scheduler steps, 1; one_cycle needs at least 2", 1},
      {"name: reduce_on_plateau\nmode: minimum\n", "test.yaml:2:7: mode: must be one of: min, max; got 'minimum'"},
      {"name: reduce_on_plateau\nthreshold_mode: relative\n", "threshold_mode: must be one of: rel, abs; got 'relative'"},
      {"name: reduce_on_plateau\nfactor: 1\n", "factor: must be in [0, 1), got 1"},
      {"name: reduce_on_plateau\npatience: -1\n", "patience: must be >= 0, got -1"},
      {"name: reduce_on_plateau\nmin_lr: -0.1\n", "min_lr: must be >= 0, got -0.1"},
      {"name: reduce_on_plateau\nmonitor: ''\n", "test.yaml:2:10: monitor: must not be empty"},
      {"name: linear\nend_factor: 2\n", "end_factor: must be in [0, 1], got 2"},
      {"name: linear\ntotal_iters: 0\n", "total_iters: must be >= 1, got 0"},
      {"name: constant\nfactor: -1\n", "factor: must be in [0, 1], got -1"},
  };
  for (const auto& b : bad) {
    BOOST_TEST_CONTEXT(b.yaml) {
      const auto e = one_line_error_of([&] { make(b.yaml, b.total); });
      BOOST_TEST_MESSAGE(e.what());
      BOOST_TEST(e.exit_code() == 2);
      BOOST_TEST(contains(e.what(), b.message), e.what());
    }
  }
}
