// Training beyond one process: real ranks of the graft binary over c10d's TCPStore and
// ProcessGroupGloo on 127.0.0.1, started by graft launch, by torchrun (Debian's), or by
// hand with torchrun's environment. Every wait is driven by what the ranks print or
// write (a checkpoint file, a log line, an exit), never by the clock.
#define BOOST_TEST_MODULE dist
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include <fmt/format.h>
#include <torch/torch.h>

#include "graft/host/serialize.h"
#include "support/run.h"
#include "support/wait.h"

namespace fs = std::filesystem;
using graft::test::contains;
using graft::test::run;
using graft::test::slurp;

namespace {

// LeNet has no BatchNorm and no dropout: 2 ranks of batch 16 compute what 1 rank of batch
// 32 computes (up to float rounding). Augmentation is a function of (seed, epoch, sample).
const std::string lenet_recipe = R"(
seed: 3
model:
  backbone: {name: lenet, in_channels: 1, input_size: 28}
data:
  dataset: {name: synthetic, train_size: 640, test_size: 101, noise: 0.5}
  val: none
  batch_size: 32
  workers: 1
  transforms: [{name: random_crop, size: 28, padding: 2}, random_horizontal_flip, to_tensor]
optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
checkpoint: [save_last, {name: every_n_steps, n: 1}]
trainer: {epochs: 1, max_steps: 20, threads: 1, log_every: 5, test: true}
)";

// BatchNorm: each rank normalises its own share (as DDP without SyncBatchNorm), the
// buffers follow rank 0. The first conv is frozen for an epoch: the gradient buckets are
// rebuilt on every rank alike when it thaws.
const std::string bn_recipe = R"(
seed: 4
model:
  backbone: {name: simple_cnn, width: 4, hidden: 16, dropout: 0}
  freeze: [{name: gradual_unfreeze, frozen: ['features.0.*'], milestones: [{epoch: 1, unfreeze: ['features.0.*'], lr: 0.01}]}]
data:
  dataset: {name: synthetic, train_size: 256, test_size: 40, noise: 0.5}
  val: 0.125
  batch_size: 16
  workers: 0
  transforms: [{name: random_crop, size: 28, padding: 2}, to_tensor]
optimizer: {name: adam, lr: 0.01}
trainer: {epochs: 2, threads: 1, log_every: 5}
)";

struct Dir {
  fs::path path = graft::test::temp_dir("dist");
  ~Dir() { fs::remove_all(path); }
};

fs::path write(const fs::path& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir / name) << text;
  return dir / name;
}

std::string graft_cmd() { return std::string(GRAFT_BIN); }

std::string launch(int nproc, const std::string& rest) {
  return graft_cmd() + " launch --nproc-per-node " + std::to_string(nproc) + " -- train " + rest;
}

/// The model's weights of a checkpoint, by key.
std::map<std::string, torch::Tensor> weights(const fs::path& file) {
  std::map<std::string, torch::Tensor> out;
  const auto d = graft::read_torch_file(file.string()).toGenericDict().at("model_state_dict").toGenericDict();
  for (const auto& e : d) out[e.key().toStringRef()] = e.value().toTensor();
  return out;
}

std::int64_t step_of(const fs::path& file) { return graft::read_torch_file(file.string()).toGenericDict().at("step").toInt(); }

double max_difference(const fs::path& a, const fs::path& b) {
  const auto x = weights(a), y = weights(b);
  BOOST_REQUIRE_EQUAL(x.size(), y.size());
  double worst = 0;
  for (const auto& [k, v] : x) {
    BOOST_REQUIRE_MESSAGE(y.count(k), k);
    if (!v.is_floating_point()) {
      BOOST_TEST(torch::equal(v, y.at(k)), k);
      continue;
    }
    worst = std::max(worst, (v.to(torch::kDouble) - y.at(k).to(torch::kDouble)).abs().max().item<double>());
  }
  return worst;
}

void require_identical(const fs::path& a, const fs::path& b) {
  const auto x = weights(a), y = weights(b);
  BOOST_REQUIRE_EQUAL(x.size(), y.size());
  for (const auto& [k, v] : x) BOOST_TEST(torch::equal(v, y.at(k)), a.string() + " vs " + b.string() + ": " + k);
}

fs::path last(const fs::path& run_dir) { return run_dir / "checkpoints" / "last.pth"; }

/// The "test split, N samples" count of a run's final report.
std::string test_line(const std::string& log) {
  std::smatch m;
  const std::regex re(R"((^|\n)test +(\d+) samples)");
  return std::regex_search(log, m, re) ? m[2].str() : "";
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// ---- processes ---------------------------------------------------------------------------

struct Process {
  pid_t pid = -1;
  fs::path log;
};

Process spawn(const std::string& command, const fs::path& log, const std::string& env = "") {
  Process p;
  p.log = log;
  p.pid = ::fork();
  if (p.pid == 0) {
    ::setpgid(0, 0);
    const std::string full = env + " exec " + command + " >" + log.string() + " 2>&1 </dev/null";
    ::execl("/bin/bash", "bash", "-c", full.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return p;
}

int wait_exit(const Process& p) {
  int status = 0;
  ::waitpid(p.pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// The pid graft launch printed for a rank.
pid_t rank_pid(const fs::path& log, int rank) {
  pid_t pid = -1;
  graft::test::wait_until(
      [&] {
        std::smatch m;
        const std::string text = slurp(log);
        const std::regex re("launch: rank " + std::to_string(rank) + " is pid (\\d+)");
        if (!std::regex_search(text, m, re)) return false;
        pid = std::stoi(m[1].str());
        return true;
      },
      "graft launch to start rank " + std::to_string(rank) + " (" + log.string() + ")");
  return pid;
}

void wait_for_checkpoint(const fs::path& run_dir, int step, const fs::path& log) {
  const auto file = run_dir / "checkpoints" / fmt::format("step-{:08d}.pth", step);
  graft::test::wait_until([&] { return fs::exists(file); }, file.string() + " (log: " + log.string() + ")");
}

/// The uninterrupted runs of the LeNet recipe, once for the suite: 1 rank of batch 32, and
/// 2 ranks of batch 16 by graft launch.
struct Reference {
  Dir dir;
  fs::path recipe, one, two;
  std::string one_log, two_log;
  Reference() {
    recipe = write(dir.path, "lenet.yaml", lenet_recipe);
    one = dir.path / "one";
    two = dir.path / "two";
    auto r1 = run(graft_cmd() + " train " + recipe.string() + " --run-dir " + one.string());
    BOOST_REQUIRE_MESSAGE(r1.code == 0, r1.err);
    one_log = r1.err;
    auto r2 = run(launch(2, recipe.string() + " --set data.batch_size=16 --run-dir " + two.string()));
    BOOST_REQUIRE_MESSAGE(r2.code == 0, r2.err);
    two_log = r2.err;
  }
};
const Reference& reference() {
  static Reference r;
  return r;
}

}  // namespace

BOOST_AUTO_TEST_CASE(two_ranks_of_half_the_batch_train_what_one_rank_trains) {
  const auto& ref = reference();
  BOOST_TEST(step_of(last(ref.one)) == 20);
  BOOST_TEST(step_of(last(ref.two)) == 20);
  const double diff = max_difference(last(ref.one), last(ref.two));
  BOOST_TEST_MESSAGE("largest weight difference, 1 rank vs 2 ranks after 20 steps: " << diff);
  BOOST_TEST(diff < 1e-5);
  BOOST_TEST(diff > 0.0);  // two processes really computed it (float sums differ in order)
  // each rank's lines say which; rank 0 owns the run dir
  BOOST_TEST(contains(ref.two_log, "info: [rank 0] joined the gloo process group: rank 0/2"));
  BOOST_TEST(contains(ref.two_log, "rank 1 of 2 (gloo)") == false);  // rank 1 logs warnings only
  BOOST_TEST(contains(ref.two_log, "cpu, rank 0 of 2 (gloo)"));
  // the test split is covered exactly once: 101 samples, not 102
  BOOST_TEST(test_line(ref.one_log) == "101");
  BOOST_TEST(test_line(ref.two_log) == "101");
}

BOOST_AUTO_TEST_CASE(two_runs_with_batchnorm_are_bit_identical) {
  Dir dir;
  const auto recipe = write(dir.path, "bn.yaml", bn_recipe);
  for (const char* name : {"a", "b"}) {
    const auto r = run(launch(2, recipe.string() + " --run-dir " + (dir.path / name).string()));
    BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  }
  require_identical(last(dir.path / "a"), last(dir.path / "b"));
  // rank 0's buffers, updated once a step (a broadcast, not a sum over the ranks)
  const auto w = weights(last(dir.path / "a"));
  BOOST_TEST(w.at("features.1.num_batches_tracked").item<std::int64_t>() == step_of(last(dir.path / "a")));
  BOOST_TEST(step_of(last(dir.path / "a")) > 8);
}

BOOST_AUTO_TEST_CASE(two_nodes_of_one_rank_each) {
  const auto& ref = reference();
  Dir dir;
  const int port = free_port();
  const auto run_dir = dir.path / "run";
  std::vector<Process> nodes;
  for (int node = 0; node < 2; ++node)
    nodes.push_back(spawn(graft_cmd() + fmt::format(" launch --nnodes 2 --node-rank {} --nproc-per-node 1 --master 127.0.0.1:{}", node, port) +
                              " -- train " + ref.recipe.string() + " --set data.batch_size=16 --run-dir " + run_dir.string(),
                          dir.path / fmt::format("node{}.log", node)));
  for (const auto& n : nodes) BOOST_TEST(wait_exit(n) == 0, slurp(n.log));
  // the same world size and data: the same computation as graft launch on one node
  require_identical(last(run_dir), last(ref.two));
}

BOOST_AUTO_TEST_CASE(under_torchrun) {
  const auto& ref = reference();
  Dir dir;
  const auto run_dir = dir.path / "run";
  // Debian's torchrun 1.13 under Python 3.11 needs --redirects/--tee (README)
  const auto r = run(fmt::format("/usr/bin/torchrun --standalone --nproc_per_node 2 --no_python --redirects 0:1,1:1 --tee 0:1,1:1 "
                                 "{} train {} --set data.batch_size=16 --run-dir {}",
                                 graft_cmd(), ref.recipe.string(), run_dir.string()));
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out + r.err);
  require_identical(last(run_dir), last(ref.two));
}

BOOST_AUTO_TEST_CASE(a_killed_rank_ends_the_others_and_a_restart_goes_on_bit_identical) {
  const auto& ref = reference();
  Dir dir;
  const auto run_dir = dir.path / "run";
  const auto p = spawn(graft_cmd() + " launch --nproc-per-node 2 --max-restarts 1 -- train " + ref.recipe.string() +
                           " --set data.batch_size=16 --run-dir " + run_dir.string(),
                       dir.path / "launch.log");
  const pid_t rank1 = rank_pid(p.log, 1);
  wait_for_checkpoint(run_dir, 6, p.log);
  ::kill(rank1, SIGKILL);
  const int code = wait_exit(p);
  const std::string log = slurp(p.log);
  BOOST_TEST(code == 0, log);
  BOOST_TEST(contains(log, fmt::format("launch: rank 1 (pid {}) was killed by signal 9", rank1)), log);
  BOOST_TEST(contains(log, "launch: restarting the group with --resume auto (1 of 1)"), log);
  BOOST_TEST(contains(log, "resumed from"), log);
  require_identical(last(run_dir), last(ref.two));
}

BOOST_AUTO_TEST_CASE(a_rank_notices_a_dead_peer_by_itself) {
  // no launcher to stop it: rank 0 must end on its own, naming the failure
  const auto& ref = reference();
  Dir dir;
  const int port = free_port();
  const auto run_dir = dir.path / "run";
  std::vector<Process> ranks;
  for (int r = 0; r < 2; ++r)
    ranks.push_back(spawn(graft_cmd() + " train " + ref.recipe.string() + " --set data.batch_size=16 --run-dir " + run_dir.string(),
                          dir.path / fmt::format("rank{}.log", r),
                          fmt::format("WORLD_SIZE=2 RANK={} LOCAL_RANK={} LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT={}", r, r, port)));
  wait_for_checkpoint(run_dir, 3, ranks[0].log);
  ::kill(ranks[1].pid, SIGKILL);
  BOOST_TEST(wait_exit(ranks[1]) == 128 + SIGKILL);
  const int code = wait_exit(ranks[0]);
  const std::string log = slurp(ranks[0].log);
  BOOST_TEST(code == 1, log);
  BOOST_TEST(contains(log, "error: rank 0/2: "), log);
  BOOST_TEST(contains(log, "another rank stopped or was killed"), log);
}

BOOST_AUTO_TEST_CASE(a_rank_that_throws_is_named_by_the_others) {
  // one unreadable image among 32: the rank dealt it fails, the other names it
  Dir dir;
  const auto made = run(std::string(GRAFT_PYTHON) + " -c \"import numpy as np, os\n"
                        "from PIL import Image\n"
                        "rng = np.random.default_rng(0)\n"
                        "for c in ['a', 'b']:\n"
                        "    os.makedirs('" + (dir.path / "imgs/train/").string() + "' + c)\n"
                        "    for i in range(16):\n"
                        "        Image.fromarray((rng.random((8, 8, 3)) * 255).astype('uint8')).save('" +
                        (dir.path / "imgs/train/").string() + "%s/%d.png' % (c, i))\n"
                        "open('" + (dir.path / "imgs/train/b/7.png").string() + "', 'wb').write(b'not an image')\n\"");
  BOOST_REQUIRE_MESSAGE(made.code == 0, made.err);
  const auto recipe = write(dir.path, "img.yaml", "model: {backbone: {name: mlp, in_features: 192, hidden: [8], num_classes: 2}}\n"
                                                  "data: {dataset: {name: image_folder, root: " + (dir.path / "imgs").string() +
                                                      "}, val: none, batch_size: 4, workers: 0, transforms: [to_tensor]}\n"
                                                  "optimizer: {name: sgd, lr: 0.05}\n"
                                                  "trainer: {epochs: 1, threads: 1, test: false}\n");
  const auto r = run(launch(2, recipe.string() + " --run-dir " + (dir.path / "run").string()));
  BOOST_TEST(r.code != 0);
  const std::regex own(R"(error: \[rank (\d)\] sample \d+: \S+7\.png: neither a PNG nor a JPEG file)");
  std::smatch m;
  BOOST_REQUIRE_MESSAGE(std::regex_search(r.err, m, own), r.err);
  const int failed = std::stoi(m[1].str()), other = 1 - failed;
  BOOST_TEST(contains(r.err, fmt::format("error: rank {}/2: ", other)), r.err);
  BOOST_TEST(contains(r.err, fmt::format("; rank {}/2 failed: sample ", failed)), r.err);
  BOOST_TEST(contains(r.err, "launch: the group failed"), r.err);
}

BOOST_AUTO_TEST_CASE(a_two_rank_checkpoint_goes_on_with_one_rank) {
  const auto& ref = reference();
  Dir dir;
  const auto run_dir = dir.path / "run";
  auto r = run(launch(2, ref.recipe.string() + " --set data.batch_size=16 --set trainer.max_steps=10 --run-dir " + run_dir.string()));
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  BOOST_REQUIRE(step_of(last(run_dir)) == 10);
  // the same global batch (1 x 32 = 2 x 16): 10 more steps over the samples the 2-rank run
  // would have taken next
  r = run(graft_cmd() + " train " + ref.recipe.string() + " --run-dir " + run_dir.string() + " --resume auto");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  BOOST_TEST(contains(r.err, "written by 2 rank(s) of batch 16; this run has 1 of batch 32"), r.err);
  BOOST_TEST(!contains(r.err, "the global batch changes"), r.err);
  BOOST_TEST(step_of(last(run_dir)) == 20);
  const double diff = max_difference(last(run_dir), last(ref.one));
  BOOST_TEST_MESSAGE("2 ranks for 10 steps then 1 rank for 10, vs 1 rank for 20: " << diff);
  BOOST_TEST(diff < 1e-5);
}

BOOST_AUTO_TEST_CASE(sigterm_stops_every_rank_with_75) {
  const auto& ref = reference();
  Dir dir;
  const auto run_dir = dir.path / "run";
  const auto recipe = write(dir.path, "r.yaml",
                            "base: " + ref.recipe.string() +
                                "\ncheckpoint: [save_last, {name: every_n_steps, n: 1}, {name: on_signal, stop: [SIGTERM]}]\n"
                                "trainer: {max_steps: 400, epochs: 20}\n");
  const auto p = spawn(launch(2, recipe.string() + " --set data.batch_size=16 --run-dir " + run_dir.string()), dir.path / "launch.log");
  wait_for_checkpoint(run_dir, 2, p.log);
  ::kill(p.pid, SIGTERM);
  const int code = wait_exit(p);
  const std::string log = slurp(p.log);
  BOOST_TEST(code == 75, log);
  for (int r = 0; r < 2; ++r) BOOST_TEST(contains(log, fmt::format("warning: [rank {}] interrupted by SIGTERM", r)), log);
  // the run goes on from where the ranks agreed to stop
  const auto saved = step_of(last(run_dir));
  BOOST_TEST(saved >= 2);
  BOOST_TEST(saved < 400);
}

BOOST_AUTO_TEST_CASE(bad_launches_say_what_is_wrong) {
  const auto& ref = reference();
  const std::string recipe = ref.recipe.string();
  struct Case {
    std::string command, expected;
  };
  const int port = free_port();
  const std::vector<Case> cases = {
      {graft_cmd() + " launch --nproc-per-node 0 -- train " + recipe, "--nproc-per-node must be at least 1"},
      {graft_cmd() + " launch --nproc-per-node 2 -- eval " + recipe, "expected the command to run after '--': train RECIPE"},
      {graft_cmd() + " launch --nnodes 2 --node-rank 0 -- train " + recipe, "--nnodes above 1 needs --master ADDR:PORT"},
      {graft_cmd() + " launch --nnodes 2 --node-rank 2 --master 127.0.0.1:1234 -- train " + recipe, "--node-rank 2 is not in [0, 2)"},
      {graft_cmd() + " launch --master localhost -- train " + recipe, "--master localhost: expected ADDR:PORT"},
      {"WORLD_SIZE=2 RANK=2 " + graft_cmd() + " train " + recipe, "RANK=2: expected an integer in [0, 1]"},
      {"WORLD_SIZE=2 " + graft_cmd() + " train " + recipe, "WORLD_SIZE is set but RANK is not"},
      {"WORLD_SIZE=2 RANK=0 MASTER_PORT=99999 " + graft_cmd() + " train " + recipe, "MASTER_PORT=99999: expected an integer"},
  };
  for (const auto& c : cases) {
    const auto r = run(c.command);
    BOOST_TEST(r.code == 2, c.command + "\n" + r.err);
    BOOST_TEST(contains(r.err, c.expected), c.command + "\n" + r.err);
  }
  (void)port;
}

BOOST_AUTO_TEST_CASE(an_unreachable_master_or_a_port_in_use_fails_in_one_line) {
  const auto& ref = reference();
  // a port held by another listener: rank 0 cannot host the store
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  BOOST_REQUIRE(::listen(fd, 1) == 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int held = ntohs(addr.sin_port);
  auto r = run(fmt::format("WORLD_SIZE=2 RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT={} {} train {} --run-dir {}", held, graft_cmd(),
                           ref.recipe.string(), (graft::test::temp_dir("dist-port") / "run").string()));
  BOOST_TEST(r.code == 1, r.err);
  BOOST_TEST(contains(r.err, fmt::format("error: rank 0/2: cannot listen on 127.0.0.1:{} (MASTER_ADDR:MASTER_PORT): the port is in use", held)),
             r.err);
  ::close(fd);
  // nobody listens: rank 1 gives up after GRAFT_RDZV_TIMEOUT
  r = run(fmt::format("GRAFT_RDZV_TIMEOUT=2 WORLD_SIZE=2 RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT={} {} train {}", free_port(),
                      graft_cmd(), ref.recipe.string()));
  BOOST_TEST(r.code == 1, r.err);
  BOOST_TEST(contains(r.err, "error: rank 1/2: cannot reach the master at 127.0.0.1:"), r.err);
  BOOST_TEST(contains(r.err, "within 2 s (GRAFT_RDZV_TIMEOUT)"), r.err);
}
