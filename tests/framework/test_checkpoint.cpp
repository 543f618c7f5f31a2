// Checkpoints and exact resume: resumed runs end bit-identical to uninterrupted ones (at an
// epoch boundary, mid-epoch, across an unfreeze), SIGKILL loops (also during a write),
// SIGTERM, corrupt newest files, a full disk, retention, recipe changes, and Python's
// torch.load / torchvision / torch.optim reading graft's checkpoints.
#define BOOST_TEST_MODULE checkpoint
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "graft/error.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "graft/host/serialize.h"
#include "graft/host/runtime.h"
#include "graft/host/trainer.h"
#include "support/plugins.h"
#include "support/run.h"
#include "support/wait.h"

namespace fs = std::filesystem;
using graft::test::contains;
using graft::test::run;
using graft::test::slurp;

namespace {

// BatchNorm buffers, dropout (the global RNG), augmentation (the loader's RNG), momentum,
// a per-step cosine schedule and a gradual unfreeze at the third epoch (index 2).
const std::string base_recipe = R"(
seed: 5
model:
  backbone: {name: simple_cnn, width: 8, hidden: 64, dropout: 0.3}
  freeze: [{name: gradual_unfreeze, frozen: ['features.0.*'], milestones: [{epoch: 2, unfreeze: ['features.0.*'], lr: 0.01}]}]
data:
  dataset: {name: synthetic, train_size: 320, test_size: 64, noise: 0.5}
  val: 0.1
  batch_size: 32
  workers: 0
  transforms: [{name: random_crop, size: 28, padding: 2}, random_horizontal_flip, to_tensor]
optimizer: {name: sgd, lr: 0.05, momentum: 0.9, weight_decay: 0.0005}
scheduler: {name: cosine, interval: step}
trainer: {epochs: 3, threads: 1, log_every: 4, test: false}
)";

fs::path write_recipe(const fs::path& dir, const std::string& extra = "") {
  std::ofstream(dir / "base.yaml") << base_recipe;
  std::ofstream(dir / "recipe.yaml") << "base: base.yaml\n" << extra;
  return dir / "recipe.yaml";
}

graft::FitResult fit(const fs::path& recipe, const fs::path& run_dir, const std::string& resume = "",
                     const std::vector<std::string>& overrides = {}) {
  graft::TrainOptions options;
  options.run_dir = run_dir.string();
  options.progress = false;
  options.resume = resume;
  const auto r = graft::load_recipe(recipe.string(), overrides);
  // what `graft train` does first: the library leaves CPU threads to the program, and a
  // run compared with a `graft train` process must compute with the same thread count
  graft::configure_cpu(graft::resolve_threads(r.root["trainer"]["threads"]));
  return graft::fit(r, graft::test::registry(), options);
}

/// Every tensor of two checkpoints' model and optimizer state, compared bit for bit.
void require_same_state(const fs::path& a, const fs::path& b) {
  const auto x = graft::read_torch_file(a.string()).toGenericDict();
  const auto y = graft::read_torch_file(b.string()).toGenericDict();
  BOOST_TEST(x.at("step").toInt() == y.at("step").toInt());
  const auto wx = x.at("model_state_dict").toGenericDict(), wy = y.at("model_state_dict").toGenericDict();
  BOOST_REQUIRE(wx.size() == wy.size());
  for (const auto& e : wx)
    BOOST_TEST(torch::equal(e.value().toTensor(), wy.at(e.key()).toTensor()), a.string() + " vs " + b.string() + ": " + e.key().toStringRef());
  const auto ox = x.at("optimizer_state_dict").toGenericDict(), oy = y.at("optimizer_state_dict").toGenericDict();
  const auto sx = ox.at("state").toGenericDict(), sy = oy.at("state").toGenericDict();
  BOOST_REQUIRE(sx.size() == sy.size());
  for (const auto& e : sx) {
    const auto px = e.value().toGenericDict(), py = sy.at(e.key()).toGenericDict();
    for (const auto& t : px) BOOST_TEST(torch::equal(t.value().toTensor(), py.at(t.key()).toTensor()), "optimizer state " + t.key().toStringRef());
  }
  BOOST_TEST(ox.at("param_groups").toList().size() == oy.at("param_groups").toList().size());
}

std::int64_t position_batch(const fs::path& file) {
  return graft::read_torch_file(file.string()).toGenericDict().at("graft").toGenericDict().at("position").toGenericDict().at("batch").toInt();
}

/// The uninterrupted reference run, once for the suite: every step and epoch saved.
struct Reference {
  fs::path dir, run;
  Reference() {
    dir = graft::test::temp_dir("ckpt-ref");
    run = dir / "run";
    write_recipe(dir, "checkpoint: [save_last, {name: every_n_steps, n: 1}, every_n_epochs]\n");
    result = fit(dir / "recipe.yaml", run);
    BOOST_REQUIRE(result.steps == 30);
  }
  graft::FitResult result;
  ~Reference() { fs::remove_all(dir); }
  fs::path file(const std::string& name) const { return run / "checkpoints" / name; }
};
const Reference& reference() {
  static Reference r;
  return r;
}

// ---- processes ---------------------------------------------------------------------------

pid_t spawn(const std::string& command) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::execl("/bin/bash", "bash", "-c", ("exec " + command).c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool exited(pid_t pid, int& code) {
  int status = 0;
  if (::waitpid(pid, &status, WNOHANG) != pid) return false;
  code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return true;
}

/// The highest N of the step-N.pth files in `dir` (0: none yet).
int newest_step(const fs::path& dir) {
  int newest = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const auto n = e.path().filename().string();
    if (n.rfind("step-", 0) == 0 && n.size() == 17 && n.substr(13) == ".pth") newest = std::max(newest, std::stoi(n.substr(5, 8)));
  }
  return newest;
}

bool temp_file_in(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().rfind('.', 0) == 0) return true;
  return false;
}

std::string train_cmd(const fs::path& recipe, const fs::path& run_dir, const std::string& extra = "") {
  return std::string(GRAFT_BIN) + " train " + recipe.string() + " --run-dir " + run_dir.string() + " --progress 0 " + extra +
         " >>" + (run_dir.parent_path() / "log.txt").string() + " 2>&1";
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_checkpoint_holds_what_an_exact_resume_needs) {
  const auto& ref = reference();
  const auto c = graft::read_torch_file(ref.file("step-00000015.pth").string()).toGenericDict();
  for (const char* k : {"epoch", "step", "model_state_dict", "optimizer_state_dict", "loss", "hooks", "scheduler", "graft"})
    BOOST_TEST(c.contains(k), k);
  const auto g = c.at("graft").toGenericDict();
  for (const char* k : {"format", "exact", "position", "rng", "amp", "train_sums", "metrics", "checkpoint", "freeze", "recipe",
                        "versions", "seconds"})
    BOOST_TEST(g.contains(k), k);
  BOOST_TEST(c.at("step").toInt() == 15);
  BOOST_TEST(c.at("epoch").toInt() == 1);  // epochs completed
  BOOST_TEST(g.at("position").toGenericDict().at("batch").toInt() == 5);
  BOOST_TEST(g.at("exact").toBool());
  BOOST_TEST(g.at("rng").toGenericDict().at("cpu").toTensor().numel() > 0);
  BOOST_TEST(contains(g.at("recipe").toStringRef(), "simple_cnn"));
  // the optimizer state is named: frozen parameters have none
  const auto groups = c.at("optimizer_state_dict").toGenericDict().at("param_groups").toList();
  BOOST_TEST(groups.size() == 1u);
  std::set<std::string> names;
  for (const auto& n : groups.get(0).toGenericDict().at("param_names").toList()) names.insert(c10::IValue(n).toStringRef());
  BOOST_TEST(!names.count("features.0.weight"));
  BOOST_TEST(names.count("classifier.1.weight") + names.count("classifier.0.weight") + names.count("classifier.2.weight") > 0u);
  // after the unfreeze at the third epoch: a second group
  const auto later = graft::read_torch_file(ref.file("step-00000025.pth").string()).toGenericDict();
  BOOST_TEST(later.at("optimizer_state_dict").toGenericDict().at("param_groups").toList().size() == 2u);
}

BOOST_AUTO_TEST_CASE(resumed_runs_end_bit_identical_to_the_uninterrupted_run) {
  const auto& ref = reference();
  const auto dir = graft::test::temp_dir("ckpt-resume");
  const auto recipe = write_recipe(dir, "checkpoint: [save_last, {name: every_n_steps, n: 1}, every_n_epochs]\n");
  // an epoch boundary, mid-epoch, the last batch of an epoch (its end still to do), the
  // epoch where the unfreeze happens (boundary) and after it (mid-epoch)
  for (const std::string name : {"epoch-0001.pth", "step-00000013.pth", "step-00000020.pth", "epoch-0002.pth", "step-00000027.pth"}) {
    BOOST_TEST_CONTEXT("resumed from " << name) {
      const auto out = dir / ("run-" + name);
      const auto r = fit(recipe, out, ref.file(name).string());
      BOOST_TEST(r.resumed_from == ref.file(name).string());
      BOOST_TEST(r.steps == 30);
      require_same_state(ref.file("last.pth"), out / "checkpoints/last.pth");
      // every later step's checkpoint is the reference's too
      require_same_state(ref.file("step-00000028.pth"), out / "checkpoints/step-00000028.pth");
      // the metrics go on where they were
      const auto lines = slurp(out / "metrics.jsonl");
      BOOST_TEST(contains(lines, "\"step\":30"));
      // the last epoch's train/* metrics are the uninterrupted run's, also when resumed
      // within that epoch (the metrics' running sums are in the checkpoint)
      for (const auto& [k, v] : ref.result.metrics)
        if (k.rfind("train/", 0) == 0) BOOST_TEST(r.metrics.at(k) == v, k);
      BOOST_TEST(ref.result.metrics.count("train/top1") == 1u);
    }
  }
  BOOST_TEST(position_batch(ref.file("step-00000020.pth")) == 10);
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(adam_adamw_and_rmsprop_state_resumes_exactly) {
  const auto dir = graft::test::temp_dir("ckpt-optim");
  const auto recipe = write_recipe(dir, "checkpoint: [save_last, {name: every_n_steps, n: 7}]\n");
  for (const std::string optimizer : {"{name: adam, lr: 0.001, amsgrad: true}", "{name: adamw, lr: 0.001}",
                                      "{name: rmsprop, lr: 0.001, momentum: 0.9, centered: true}"}) {
    BOOST_TEST_CONTEXT(optimizer) {
      const std::vector<std::string> set = {"optimizer=" + optimizer, "trainer.epochs=2"};
      fs::remove_all(dir / "a");
      fs::remove_all(dir / "b");
      fit(recipe, dir / "a", "", set);
      const auto r = fit(recipe, dir / "b", (dir / "a/checkpoints/step-00000007.pth").string(), set);
      BOOST_TEST(r.steps == 20);
      require_same_state(dir / "a/checkpoints/last.pth", dir / "b/checkpoints/last.pth");
      const auto state = graft::read_torch_file((dir / "a/checkpoints/step-00000007.pth").string())
                             .toGenericDict().at("optimizer_state_dict").toGenericDict().at("state").toGenericDict();
      BOOST_TEST(state.size() > 0u);
    }
  }
  fs::remove_all(dir);
}

// A checkpoint whose layout is damaged (a key missing, a value of another type) is refused
// with one line naming the file and the key, never a crash or a std::bad_variant.
BOOST_AUTO_TEST_CASE(a_malformed_checkpoint_names_the_key_at_fault) {
  const auto& ref = reference();
  const auto dir = graft::test::temp_dir("ckpt-malformed");
  const auto recipe = write_recipe(dir, "checkpoint: [save_last]\n");
  auto damaged = [&](const std::string& name, const std::function<void(c10::impl::GenericDict&)>& damage) {
    auto c = graft::read_torch_file(ref.file("step-00000013.pth").string()).toGenericDict();
    damage(c);
    const auto path = dir / name;
    graft::write_torch_file(c, path.string());
    return path;
  };
  const std::vector<std::pair<std::function<void(c10::impl::GenericDict&)>, std::string>> cases = {
      {[](auto& c) { (void)c.at("graft").toGenericDict().at("train_sums").toGenericDict().erase("seen"); },
       "checkpoint key 'graft.train_sums': has no 'seen'"},
      {[](auto& c) { c.at("graft").toGenericDict().at("position").toGenericDict().insert_or_assign("batch", std::string("five")); },
       "checkpoint key 'graft.position.batch': expected an int, found String"},
      {[](auto& c) { (void)c.erase("optimizer_state_dict"); }, "has no 'optimizer_state_dict'"},
      {[](auto& c) { c.at("scheduler").toGenericDict().insert_or_assign("count", 2.5); },
       "checkpoint key 'scheduler': 'count': expected an int, found a float"},
      {[](auto& c) {
         (void)c.at("graft").toGenericDict().at("metric_states").toGenericDict().at("0").toGenericDict().erase("correct");
       },
       "checkpoint key 'graft.metric_states.0': metric 0: no 'correct' in the saved state"},
      {[](auto& c) { c.at("graft").toGenericDict().insert_or_assign("format", c10::IValue(std::int64_t{7})); },
       "checkpoint format 7; this graft reads formats 1 to 2"},
  };
  int k = 0;
  for (const auto& [damage, expected] : cases) {
    const auto path = damaged("bad-" + std::to_string(k++) + ".pth", damage);
    BOOST_TEST_CONTEXT(expected) {
      try {
        fit(recipe, dir / "run", path.string());
        BOOST_TEST(false, "resumed from a damaged checkpoint");
      } catch (const graft::Error& e) {
        BOOST_TEST(contains(e.what(), expected), e.what());
        BOOST_TEST(contains(e.what(), path.string()), e.what());
        BOOST_TEST(std::string(e.what()).find('\n') == std::string::npos);
      }
    }
  }
  fs::remove_all(dir);
}

// Checkpoints of graft before the trainer's units (format 1: no metric sums) still resume:
// the training itself goes on exactly; only the epoch's train/* metrics restart there.
BOOST_AUTO_TEST_CASE(a_format_1_checkpoint_still_resumes) {
  const auto& ref = reference();
  const auto dir = graft::test::temp_dir("ckpt-format1");
  const auto recipe = write_recipe(dir, "checkpoint: [save_last, {name: every_n_steps, n: 1}, every_n_epochs]\n");
  auto c = graft::read_torch_file(ref.file("step-00000013.pth").string()).toGenericDict();
  auto g = c.at("graft").toGenericDict();
  g.insert_or_assign("format", c10::IValue(std::int64_t{1}));
  (void)g.erase("metric_states");
  const auto old = dir / "format1.pth";
  graft::write_torch_file(c, old.string());
  const auto r = fit(recipe, dir / "run", old.string());
  BOOST_TEST(r.steps == 30);
  require_same_state(ref.file("last.pth"), dir / "run/checkpoints/last.pth");
  BOOST_TEST(contains(slurp(dir / "run/train.log"), "a format-1 checkpoint keeps no metric sums"));
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(a_corrupt_or_truncated_newest_checkpoint_falls_back_to_the_previous_one) {
  const auto& ref = reference();
  for (const std::string damage : {"truncate", "flip"}) {
    BOOST_TEST_CONTEXT(damage) {
      const auto dir = graft::test::temp_dir("ckpt-corrupt");
      const auto recipe = write_recipe(dir, "checkpoint: [save_last, {name: every_n_steps, n: 1}, every_n_epochs]\n");
      // the run dir as a kill after step 24 leaves it (cp -a keeps the modification times)
      BOOST_REQUIRE(run("cp -a " + ref.run.string() + " " + (dir / "run").string()).code == 0);
      for (const auto& e : fs::directory_iterator(dir / "run/checkpoints")) {
        const auto n = e.path().filename().string();
        if (n == "last.pth" || n == "epoch-0003.pth" || (n.rfind("step-", 0) == 0 && std::stoi(n.substr(5, 8)) > 24)) fs::remove(e.path());
      }
      const auto newest = dir / "run/checkpoints/step-00000024.pth";
      const auto size = fs::file_size(newest);
      if (damage == "truncate") {
        fs::resize_file(newest, size / 2);
      } else {
        std::fstream f(newest, std::ios::in | std::ios::out | std::ios::binary);
        f.seekg(static_cast<std::streamoff>(size - size / 3));
        char c = 0;
        f.read(&c, 1);
        c = static_cast<char>(c ^ 0x10);
        f.seekp(static_cast<std::streamoff>(size - size / 3));
        f.write(&c, 1);
      }
      const auto r = fit(recipe, dir / "run", "auto");
      BOOST_TEST(r.resumed_from == (dir / "run/checkpoints/step-00000023.pth").string());
      require_same_state(ref.file("last.pth"), dir / "run/checkpoints/last.pth");
      fs::remove_all(dir);
    }
  }
}

BOOST_AUTO_TEST_CASE(sigkill_at_random_moments_loses_nothing) {
  // three times the data (90 steps), so that a run lives long enough to be killed often
  const auto dir = graft::test::temp_dir("ckpt-kill");
  const auto recipe = write_recipe(dir, "data: {dataset: {train_size: 960}}\ncheckpoint: [save_last, {name: every_n_steps, n: 2, keep: 2}]\n");
  fit(recipe, dir / "reference");
  const auto checkpoints = dir / "run/checkpoints";
  const auto log = dir / "log.txt";
  // Each kill waits for something the run does, never for a time: a launch is killed while
  // it starts (its first log line), while a checkpoint is being written (the temp file), or
  // just after 1-3 more checkpoints (its progress). A last launch runs to the end.
  std::mt19937 rng(7);
  int kills = 0, during_write = 0, launches = 0;
  bool finished = false;
  for (; kills < 12 && !finished; ++launches) {
    const auto log_size = fs::exists(log) ? fs::file_size(log) : 0;
    const auto from = newest_step(checkpoints);
    const int mode = launches % 3;
    const int more = std::uniform_int_distribution<int>(1, 3)(rng);
    const pid_t pid = spawn(train_cmd(recipe, dir / "run", "--resume auto"));
    int code = 0;
    const char* what[] = {"its first log line", "a checkpoint temp file", "more checkpoints"};
    graft::test::wait_until(
        [&] {
          if ((finished = exited(pid, code))) return true;
          if (mode == 0) return fs::exists(log) && fs::file_size(log) > log_size;
          if (mode == 1) return temp_file_in(checkpoints);
          return newest_step(checkpoints) >= from + 2 * more;
        },
        std::string("launch ") + std::to_string(launches + 1) + " of the SIGKILL loop to reach " + what[mode] + " (log: " + log.string() + ")");
    if (finished) {
      BOOST_REQUIRE_MESSAGE(code == 0, slurp(log));
      ++launches;
      break;
    }
    if (mode == 1) ++during_write;
    ::kill(pid, SIGKILL);
    wait_exit(pid);
    ++kills;
  }
  if (!finished) {
    ++launches;
    const auto last = run(train_cmd(recipe, dir / "run", "--resume auto"));
    BOOST_REQUIRE_MESSAGE(last.code == 0, slurp(log));
  }
  BOOST_TEST_MESSAGE(kills << " kills, " << during_write << " during a checkpoint write, " << launches << " launches");
  BOOST_TEST(kills >= 3);
  BOOST_TEST(during_write >= 1);
  require_same_state(dir / "reference/checkpoints/last.pth", dir / "run/checkpoints/last.pth");
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(sigterm_finishes_the_step_saves_and_exits_75) {
  const auto& ref = reference();
  const auto dir = graft::test::temp_dir("ckpt-term");
  const auto recipe = write_recipe(dir, "checkpoint: [save_last, on_signal, {name: every_n_steps, n: 1}]\n");
  const pid_t pid = spawn(train_cmd(recipe, dir / "run"));
  // once training is under way
  int code = 0;
  bool early = false;
  graft::test::wait_until([&] { return (early = exited(pid, code)) || fs::exists(dir / "run/checkpoints/step-00000004.pth"); },
                          "step-00000004.pth before SIGTERM");
  BOOST_REQUIRE_MESSAGE(!early, "the run ended before SIGTERM: " + slurp(dir / "log.txt"));
  ::kill(pid, SIGTERM);
  code = wait_exit(pid);
  const std::string log = slurp(dir / "log.txt");
  BOOST_TEST(code == 75, log);
  BOOST_TEST(contains(log, "interrupted by SIGTERM"), log);
  BOOST_TEST(contains(log, "--resume auto"), log);
  const auto last = graft::read_torch_file((dir / "run/checkpoints/last.pth").string()).toGenericDict();
  BOOST_TEST(last.at("step").toInt() < 30);
  BOOST_TEST(!fs::exists(dir / "run/report.json"));  // no test pass, no final report
  const auto resumed = run(train_cmd(recipe, dir / "run", "--resume auto"));
  BOOST_TEST(resumed.code == 0, slurp(dir / "log.txt"));
  require_same_state(ref.file("last.pth"), dir / "run/checkpoints/last.pth");
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(a_full_disk_during_a_save_leaves_the_previous_checkpoint_intact) {
  const auto& ref = reference();
  const auto dir = graft::test::temp_dir("ckpt-full");
  const auto recipe = write_recipe(dir, "checkpoint: [save_last, {name: every_n_steps, n: 1}]\n");
  BOOST_REQUIRE(run("mkdir -p " + (dir / "run/checkpoints").string() + " && cp " + ref.file("step-00000010.pth").string() + " " +
                    (dir / "run/checkpoints/").string()).code == 0);
  const auto before = slurp(dir / "run/checkpoints/step-00000010.pth");
  // files may not grow past half a checkpoint: the next save fails (EFBIG, as ENOSPC)
  const auto limit_kb = before.size() / 2048;
  const auto full = run("bash -c \"trap '' XFSZ; ulimit -f " + std::to_string(limit_kb) + "; " + train_cmd(recipe, dir / "run", "--resume auto") + "\"");
  const std::string log = slurp(dir / "log.txt");
  BOOST_TEST(full.code == 1, log);
  BOOST_TEST(contains(log, "not written"), log);
  BOOST_TEST(contains(log, "File too large"), log);
  BOOST_TEST(contains(log, "intact"), log);
  BOOST_TEST(slurp(dir / "run/checkpoints/step-00000010.pth") == before);
  BOOST_TEST(!temp_file_in(dir / "run/checkpoints"));
  // with room again, the run goes on from it
  const auto again = run(train_cmd(recipe, dir / "run", "--resume auto"));
  BOOST_TEST(again.code == 0, slurp(dir / "log.txt"));
  require_same_state(ref.file("last.pth"), dir / "run/checkpoints/last.pth");
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(retention_keeps_exactly_what_the_strategies_say) {
  const auto dir = graft::test::temp_dir("ckpt-keep");
  const auto recipe = write_recipe(dir, R"(checkpoint:
  - save_last
  - {name: every_n_steps, n: 4, keep: 2}
  - {name: every_n_epochs, n: 1}
  - {name: best_k, monitor: val/loss, k: 2}
  - {name: keep_last_k, k: 2, patterns: ['epoch-*.pth']}
)");
  fit(recipe, dir / "run", "", {"trainer.epochs=4"});
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(dir / "run/checkpoints")) files.insert(e.path().filename().string());
  // val/loss per epoch, from metrics.jsonl: the two lowest are kept, best.pth is the lowest
  std::vector<std::pair<double, int>> losses;
  for (std::istringstream in(slurp(dir / "run/metrics.jsonl")); !in.eof();) {
    std::string line;
    std::getline(in, line);
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    if (j.contains("val/loss")) losses.emplace_back(j["val/loss"].get<double>(), j["epoch"].get<int>());
  }
  BOOST_REQUIRE(losses.size() == 4u);
  std::sort(losses.begin(), losses.end());
  std::set<std::string> expected = {"last.pth", "best.pth", "step-00000036.pth", "step-00000040.pth", "epoch-0003.pth",
                                    "epoch-0004.pth"};
  for (int k = 0; k < 2; ++k) {
    char name[64];
    std::snprintf(name, sizeof name, "best-epoch%04d-val_loss=%.4f.pth", losses[k].second, losses[k].first);
    expected.insert(name);
  }
  BOOST_TEST(files == expected, boost::test_tools::per_element());
  const auto best = graft::read_torch_file((dir / "run/checkpoints/best.pth").string()).toGenericDict();
  BOOST_TEST(best.at("epoch").toInt() == losses[0].second);
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(a_changed_model_is_refused_and_other_changes_are_listed) {
  const auto& ref = reference();
  const auto dir = graft::test::temp_dir("ckpt-diff");
  write_recipe(dir);
  std::ofstream(dir / "wider.yaml") << "base: base.yaml\nmodel:\n  backbone: {name: simple_cnn, width: 8, hidden: 96, dropout: 0.3}\n";
  const auto refused = run(train_cmd(dir / "wider.yaml", dir / "a", "--resume " + ref.file("epoch-0001.pth").string()));
  const std::string log = slurp(dir / "log.txt");
  BOOST_TEST(refused.code == 2, log);
  BOOST_TEST(contains(log, "model.backbone.hidden: 64 -> 96"), log);
  BOOST_TEST(contains(log, "--resume-weights-only"), log);
  // weights only: a new run from those weights (the head no longer fits and is left new)
  const auto fresh = run(train_cmd(dir / "wider.yaml", dir / "b", "--resume-weights-only " + ref.file("epoch-0001.pth").string() +
                                   " --set trainer.epochs=1"));
  BOOST_TEST(fresh.code == 0, slurp(dir / "log.txt"));
  BOOST_TEST(contains(slurp(dir / "log.txt"), "a new run"));
  // a longer run is allowed, and said
  const auto longer = run(train_cmd(dir / "recipe.yaml", dir / "c", "--resume " + ref.file("last.pth").string() + " --set trainer.epochs=4 --json"));
  BOOST_TEST(longer.code == 0, slurp(dir / "log.txt"));
  BOOST_TEST(contains(slurp(dir / "log.txt"), "trainer.epochs: 3 -> 4"));
  // a missing checkpoint, and one that is not a graft checkpoint: one line, exit 2
  const auto missing = run(std::string(GRAFT_BIN) + " train " + (dir / "recipe.yaml").string() + " --resume " + (dir / "nope.pth").string());
  BOOST_TEST(missing.code == 2);
  BOOST_TEST(contains(missing.err, "nope.pth: no such file"), missing.err);
  graft::save_state_dict(graft::load_state_dict(ref.file("last.pth").string()), (dir / "weights.pth").string());
  const auto plain = run(std::string(GRAFT_BIN) + " train " + (dir / "recipe.yaml").string() + " --resume " + (dir / "weights.pth").string());
  BOOST_TEST(plain.code == 2);
  BOOST_TEST(contains(plain.err, "not a graft checkpoint"), plain.err);
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(an_exception_checkpoint_is_not_taken_by_resume_auto) {
  const auto dir = graft::test::temp_dir("ckpt-exc");
  const auto recipe = write_recipe(dir, "checkpoint: [save_last, on_exception]\n");
  // lr 1e6 diverges in the second epoch at the latest
  const auto failed = run(train_cmd(recipe, dir / "run", "--set optimizer.lr=1000000 --set scheduler=null"));
  BOOST_TEST(failed.code == 1, slurp(dir / "log.txt"));
  BOOST_REQUIRE(fs::exists(dir / "run/checkpoints/exception.pth"));
  const auto e = graft::read_torch_file((dir / "run/checkpoints/exception.pth").string()).toGenericDict();
  BOOST_TEST(!e.at("graft").toGenericDict().at("exact").toBool());
  const auto again = run(train_cmd(recipe, dir / "run", "--resume auto --set optimizer.lr=1000000 --set scheduler=null"));
  BOOST_TEST(contains(slurp(dir / "log.txt"), "not an exact resume point"));
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(python_reads_a_checkpoint_into_torchvision_and_torch_optim) {
  const auto dir = graft::test::temp_dir("ckpt-py");
  std::ofstream(dir / "r.yaml") << R"(
model: {backbone: {name: resnet18, num_classes: 10}}
data:
  dataset: {name: synthetic, shape: [3, 32, 32], train_size: 16, test_size: 8}
  batch_size: 8
  val: none
optimizer: {name: sgd, lr: 0.01, momentum: 0.9, weight_decay: 0.0001, nesterov: true}
trainer: {max_steps: 2, threads: 2, test: false}
)";
  graft::TrainOptions options;
  options.run_dir = (dir / "run").string();
  options.progress = false;
  graft::fit(graft::load_recipe((dir / "r.yaml").string()), graft::test::registry(), options);
  std::ofstream(dir / "check.py") << R"(
import sys, torch, torchvision
c = torch.load(sys.argv[1])  # torch 1.13's weights_only loader has no floats (2.x: weights_only=True works)
m = torchvision.models.resnet18(num_classes=10)
m.load_state_dict(c['model_state_dict'], strict=True)       # seed 001's loading code
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=0.0001, nesterov=True)
opt.load_state_dict(c['optimizer_state_dict'])
names = [n for n, _ in m.named_parameters()]
g = c['optimizer_state_dict']['param_groups'][0]
assert g['param_names'] == names, 'parameter order'
for i, n in enumerate(names):
    assert torch.equal(opt.state[dict(m.named_parameters())[n]]['momentum_buffer'], c['optimizer_state_dict']['state'][i]['momentum_buffer'])
m.train(); opt.zero_grad()
torch.nn.functional.cross_entropy(m(torch.randn(2, 3, 32, 32)), torch.tensor([0, 1])).backward()
opt.step()
print('ok', c['epoch'], c['step'], len(opt.state), g['lr'], g['nesterov'])
)";
  const auto py = run(std::string(GRAFT_PYTHON) + " " + (dir / "check.py").string() + " " + (dir / "run/checkpoints/last.pth").string());
  BOOST_TEST(py.code == 0, py.err);
  BOOST_TEST(contains(py.out, "ok 1 2 62 0.01 True"), py.out);
  // Adam's layout: Python's Adam takes it and steps
  graft::fit(graft::load_recipe((dir / "r.yaml").string(), {"optimizer={name: adam, lr: 0.001}"}), graft::test::registry(), options);
  const auto adam = run(std::string(GRAFT_PYTHON) + " -c \"import torch, torchvision; c = torch.load('" + (dir / "run/checkpoints/last.pth").string() +
                        "'); m = torchvision.models.resnet18(num_classes=10); m.load_state_dict(c['model_state_dict']); "
                        "o = torch.optim.Adam(m.parameters(), lr=0.001); o.load_state_dict(c['optimizer_state_dict']); "
                        "m(torch.randn(2, 3, 32, 32)).sum().backward(); o.step(); print('adam', float(o.state[m.fc.bias]['step']))\"");
  BOOST_TEST(adam.code == 0, adam.err);
  BOOST_TEST(contains(adam.out, "adam 3.0"), adam.out);
  // graft export gives the plain torchvision state dict
  const auto ex = run(std::string(GRAFT_BIN) + " export " + (dir / "run/checkpoints/last.pth").string() + " " + (dir / "w.pth").string());
  BOOST_TEST(ex.code == 0, ex.err);
  const auto py2 = run(std::string(GRAFT_PYTHON) + " -c \"import torch, torchvision; m = torchvision.models.resnet18(num_classes=10); "
                       "print(m.load_state_dict(torch.load('" + (dir / "w.pth").string() + "', weights_only=True), strict=True))\"");
  BOOST_TEST(py2.code == 0, py2.err);
  BOOST_TEST(contains(py2.out, "All keys matched"), py2.out);
  fs::remove_all(dir);
}
