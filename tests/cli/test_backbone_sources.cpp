// End-to-end: a recipe names every torchvision backbone's weights as `torchvision:NAME` in
// torch's hub cache (graft's table of file names, then a strict load of torchvision's
// layout), and graft's other sources -- a local .pth path, an http URL downloaded into that
// cache -- on a few backbones of each family size: those sources are the same code whatever
// the backbone, so checking them on all 25 (6 GB, four minutes) proved nothing more.
//
// Python (backbone_weights.py) writes each model's state dict once, with random values, in
// torchvision's layout; the hub cache and the local HTTP server get hard links to the same
// files. Everything lives in one temp dir that the fixture removes, also on failure. The
// files total about 6 GB (eight VGGs of 550 MB), so worker threads run the checks of each
// file as soon as Python has written it (GRAFT_TEST_JOBS workers, 2 by default).
#define BOOST_TEST_MODULE backbone_sources
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "support/run.h"
#include "support/wait.h"

namespace fs = std::filesystem;
using graft::test::run;
using nlohmann::json;

namespace {

const std::string graft_bin = GRAFT_BIN;
const std::string helper = std::string(GRAFT_PYTHON) + " " + GRAFT_SOURCE_DIR + "/tests/cli/backbone_weights.py ";

// For every process that holds a model or a file: malloc backs big blocks with transparent
// huge pages (glibc >= 2.35; ignored elsewhere), and one thread each (the workers are the
// parallelism). Nothing else changes, but a VGG check takes half the time: its page faults
// and TLB misses on 1.6 GB of fresh memory were most of it.
const std::string kLean = "GLIBC_TUNABLES=glibc.malloc.hugetlb=1 OMP_NUM_THREADS=1 ";

// graft's torchvision table, heaviest file first: the order Python writes them and the
// workers check them in.
const std::vector<std::string> kBackbones = {
    "vgg19_bn", "vgg19", "vgg16_bn", "vgg16", "vgg13_bn", "vgg13", "vgg11_bn", "vgg11",
    "wide_resnet50_2", "alexnet", "resnet152", "resnet101", "densenet161", "inception_v3", "resnet50",
    "resnext50_32x4d", "resnet34", "densenet201", "densenet169", "googlenet", "resnet18", "densenet121",
    "mobilenet_v2", "squeezenet1_0", "squeezenet1_1"};

// The backbone whose URL is checked twice: the second check must find the file in the cache.
const std::string kTwice = "resnet18";

// The backbones also loaded from a path and from a URL: small, with and without BatchNorm
// counters and grouped convolutions, and one of a few hundred MB.
const std::set<std::string> kEverySource = {"resnet18", "squeezenet1_1", "mobilenet_v2", "densenet121", "resnet50"};

enum Source { kPath, kTorchvision, kUrl, kUrlAgain };
const char* const kSourceNames[] = {"path", "torchvision", "url", "url, cached"};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

int worker_count() {
  const char* env = std::getenv("GRAFT_TEST_JOBS");
  return std::max(1, env ? std::atoi(env) : 2);
}

struct TempDir {
  fs::path path = graft::test::temp_dir("backbone-sources");
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// backbone_weights.py's HTTP server on 127.0.0.1, serving ROOT/files and logging each
// request to ROOT/requests.log. Should this process be killed (a ctest timeout), it removes
// `workspace` and exits.
struct Server {
  fs::path root;
  int pid = 0;
  std::string base;
  Server(fs::path dir, const fs::path& workspace) : root(std::move(dir)) {
    fs::create_directories(root / "files");
    const auto port_file = root / "port";
    const auto r = run(helper + "serve " + root.string() + " " + port_file.string() + " " + std::to_string(::getpid()) +
                       " " + workspace.string() + " >" + (root / "server.log").string() + " 2>&1 & echo $!");
    pid = std::stoi(r.out);
    graft::test::wait_until([&] { return fs::exists(port_file) || ::kill(pid, 0) != 0; }, "the test HTTP server's port file");
    if (!fs::exists(port_file)) {
      ::kill(pid, SIGTERM);
      throw std::runtime_error("the test HTTP server did not start: " + graft::test::slurp(root / "server.log"));
    }
    base = "http://127.0.0.1:" + graft::test::slurp(port_file) + "/";
  }
  ~Server() {
    if (pid > 0) ::kill(pid, SIGTERM);
  }
  /// Request path -> how many times it was asked for.
  std::map<std::string, int> requests() const {
    std::map<std::string, int> n;
    std::ifstream in(root / "requests.log");
    for (std::string line; std::getline(in, line);) ++n[line];
    return n;
  }
};

// One `graft check`, run by a worker thread and asserted by the main thread.
struct Check {
  std::string weights;  // what the recipe's `weights:` says
  std::string file;     // where graft must have found it
  graft::test::Result result;
  bool ran = false;
  double seconds = 0;
};

// One backbone: its file (backbone_weights.py's entry) and its checks.
struct Job {
  std::string name;
  json info;             // file, tensors, bytes, sha256, torchvision_file, backbone
  std::string url_name;  // NAME-<sha256 prefix>.pth
  Check checks[4];
  std::uintmax_t downloaded_bytes = 0;  // the URL download's size in the cache
  bool same_download = false;           // kTwice: the second URL check left the cached file as it was
  std::string error;                    // an exception the worker caught
};

// Jobs handed from the main thread, as Python writes their files, to the workers.
class JobQueue {
 public:
  void push(Job* job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back(job);
    }
    wake_.notify_one();
  }
  void close() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closed_ = true;
    }
    wake_.notify_all();
  }
  /// The next job; nullptr once closed and empty.
  Job* pop() {
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait(lock, [this] { return !jobs_.empty() || closed_; });
    if (jobs_.empty()) return nullptr;
    Job* job = jobs_.front();
    jobs_.pop_front();
    return job;
  }

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job*> jobs_;
  bool closed_ = false;
};

// Threads that run the queue's jobs; finish() (or the destructor, when a test fails) closes
// the queue and waits for them.
class Workers {
 public:
  Workers(JobQueue& queue, int n, const std::function<void(Job&)>& work) : queue_(queue) {
    for (int k = 0; k < n; ++k)
      threads_.emplace_back([&queue, work] {
        while (Job* job = queue.pop()) {
          try {
            work(*job);
          } catch (const std::exception& e) {
            job->error = e.what();
          }
        }
      });
  }
  void finish() {
    queue_.close();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  ~Workers() { finish(); }

 private:
  JobQueue& queue_;
  std::vector<std::thread> threads_;
};

struct PipeCloser {
  void operator()(FILE* f) const { ::pclose(f); }
};

struct Workspace {
  TempDir tmp;  // destroyed last: everything below lives in it
  fs::path files = tmp.path / "files";  // Python's files: the path source
  fs::path home = tmp.path / "torch-home";
  fs::path hub = home / "hub" / "checkpoints";
  fs::path recipes = tmp.path / "recipes";
  Server server{tmp.path / "www", tmp.path};

  Workspace() {
    fs::create_directories(files);
    fs::create_directories(hub);
    fs::create_directories(recipes);
  }

  // `graft check --json` on a recipe naming `backbone` and `weights`, with this workspace's
  // hub cache; downloads allowed unless `offline`.
  graft::test::Result check(const std::string& id, const json& backbone, const std::string& weights,
                            bool offline) const {
    const auto recipe = recipes / (id + ".yaml");
    std::ofstream(recipe) << "model:\n  backbone: " << backbone.dump() << "\n  weights: " << weights << "\n";
    const auto out = recipes / (id + ".out"), err = recipes / (id + ".err");
    const std::string command = "env -u GRAFT_OFFLINE -u GRAFT_TORCHVISION_URL " + kLean +
                                "no_proxy=127.0.0.1 TORCH_HOME=" + home.string() +
                                (offline ? " GRAFT_OFFLINE=1 " : " ") + graft_bin + " check " + recipe.string() +
                                " --json >" + out.string() + " 2>" + err.string() + " </dev/null";
    const int status = std::system(command.c_str());  // MT-safe in glibc
    graft::test::Result r;
    r.code = status == -1 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = graft::test::slurp(out);
    r.err = graft::test::slurp(err);
    return r;
  }

  // A backbone's three sources, and kTwice's URL once more. The torchvision source is
  // checked offline: graft must find torchvision's file name in the cache. The download is
  // removed after its checks, so that the suite keeps one copy of each file on disk.
  void run_job(Job& job) const {
    const json& backbone = job.info["backbone"];
    const std::string path = job.info["file"];
    const std::string tv_file = job.info["torchvision_file"];
    fs::create_hard_link(path, hub / tv_file);
    fs::create_hard_link(path, server.root / "files" / job.url_name);
    const auto download = hub / job.url_name;
    job.checks[kPath] = {path, path};
    job.checks[kTorchvision] = {"torchvision:" + job.name, (hub / tv_file).string()};
    job.checks[kUrl] = {server.base + job.url_name, download.string()};
    job.checks[kUrlAgain] = job.checks[kUrl];

    std::vector<Source> sources{kTorchvision};
    if (kEverySource.count(job.name)) sources = {kPath, kTorchvision, kUrl};
    if (job.name == kTwice) sources.push_back(kUrlAgain);
    struct stat downloaded {};
    for (Source s : sources) {
      Check& c = job.checks[s];
      const auto start = Clock::now();
      c.result = check(job.name + "-" + std::to_string(s), backbone, c.weights, s == kTorchvision);
      c.seconds = seconds_since(start);
      c.ran = true;
      struct stat now {};
      if (s == kUrl && ::stat(download.c_str(), &downloaded) == 0)
        job.downloaded_bytes = static_cast<std::uintmax_t>(downloaded.st_size);
      if (s == kUrlAgain)
        job.same_download = ::stat(download.c_str(), &now) == 0 && now.st_ino == downloaded.st_ino &&
                            now.st_mtim.tv_sec == downloaded.st_mtim.tv_sec &&
                            now.st_mtim.tv_nsec == downloaded.st_mtim.tv_nsec;
    }
    std::error_code ec;
    fs::remove(download, ec);
  }
};

void assert_check(const Job& job, Source source) {
  const Check& c = job.checks[source];
  BOOST_TEST_CONTEXT(job.name << " from " << kSourceNames[source] << ", weights: " << c.weights) {
    BOOST_TEST(c.ran);
    BOOST_TEST(c.result.code == 0, c.result.err);
    if (!c.ran || c.result.code != 0) return;
    json j;
    try {
      j = json::parse(c.result.out);
    } catch (const std::exception& e) {
      BOOST_ERROR("not JSON (" << e.what() << "): " << c.result.out);
      return;
    }
    BOOST_TEST(j["ok"] == true);
    const json& w = j["weights"];
    BOOST_TEST(w["file"] == c.file);
    BOOST_TEST(w["loaded"] == job.info["tensors"]);
    BOOST_TEST(w["missing"] == json::array(), w["missing"].dump());
    BOOST_TEST(w["unexpected"] == json::array(), w["unexpected"].dump());
    BOOST_TEST(w["mismatched"] == json::array(), w["mismatched"].dump());
    BOOST_TEST(w["defaulted"] == json::array(), w["defaulted"].dump());
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_backbones_are_grafts_torchvision_table) {
  // graft's table, as the error for an unknown name lists it
  TempDir tmp;
  std::ofstream(tmp.path / "unknown.yaml") << "model:\n  backbone: lenet\n  weights: torchvision:no_such_model\n";
  const auto r = run("env GRAFT_OFFLINE=1 " + graft_bin + " check " + (tmp.path / "unknown.yaml").string());
  BOOST_TEST(r.code == 2, r.err);
  const auto at = r.err.find("; known: ");
  BOOST_TEST_REQUIRE(at != std::string::npos, r.err);
  std::vector<std::string> table;
  std::istringstream in(r.err.substr(at + 9, r.err.find('\n', at) - at - 9));
  for (std::string name; std::getline(in, name, ',');) table.push_back(name.substr(name.find_first_not_of(' ')));
  BOOST_TEST(sorted(table) == sorted(kBackbones), boost::test_tools::per_element());

  const auto plugins = run(graft_bin + " plugins backbone --json");
  BOOST_TEST_REQUIRE(plugins.code == 0, plugins.err);
  std::set<std::string> names;
  for (const auto& p : json::parse(plugins.out)) names.insert(p["name"].get<std::string>());
  for (const auto& name : kBackbones) BOOST_TEST(names.count(name) == 1u, name << " is a backbone plugin");
}

BOOST_FIXTURE_TEST_CASE(recipes_load_every_backbone_from_each_source, Workspace) {
  std::vector<Job> jobs(kBackbones.size());
  JobQueue queue;
  Workers workers(queue, worker_count(), [this](Job& job) { run_job(job); });

  // Python writes the files in kBackbones' order, printing each one's entry (a JSON line)
  // when it is written.
  const auto start = Clock::now();
  std::string command = kLean + helper + "write " + files.string();
  for (const auto& n : kBackbones) command += " " + n;
  const auto python_err = tmp.path / "write.err";
  std::unique_ptr<FILE, PipeCloser> python(::popen((command + " 2>" + python_err.string()).c_str(), "r"));
  BOOST_REQUIRE(python);
  std::size_t announced = 0;
  std::string parse_error;
  char* buffer = nullptr;
  std::size_t capacity = 0;
  while (::getline(&buffer, &capacity, python.get()) > 0) {
    try {
      const json entry = json::parse(buffer);
      const std::string name = entry.at("name");
      const auto at = std::find(kBackbones.begin(), kBackbones.end(), name);
      if (at == kBackbones.end() || !jobs[static_cast<std::size_t>(at - kBackbones.begin())].name.empty())
        throw std::runtime_error("unexpected model " + name);
      Job& job = jobs[static_cast<std::size_t>(at - kBackbones.begin())];
      job.name = name;
      job.info = entry;
      job.url_name = name + "-" + entry.at("sha256").get<std::string>().substr(0, 8) + ".pth";
      queue.push(&job);
      ++announced;
    } catch (const std::exception& e) {
      parse_error = std::string(e.what()) + " in: " + buffer;
      break;
    }
  }
  std::free(buffer);
  const int python_status = ::pclose(python.release());
  const double write_seconds = seconds_since(start);
  workers.finish();
  const double total_seconds = seconds_since(start);

  BOOST_REQUIRE_MESSAGE(python_status == 0 && parse_error.empty() && announced == kBackbones.size(),
                        "backbone_weights.py write failed (status " << python_status << ", " << announced
                                                                    << " files written) " << parse_error
                                                                    << graft::test::slurp(python_err));
  const auto requests = server.requests();
  int total_requests = 0;
  for (const auto& [path, n] : requests) total_requests += n;
  for (const auto& job : jobs) {
    BOOST_TEST_CONTEXT(job.name) {
      BOOST_TEST(job.error.empty(), job.error);
      assert_check(job, kTorchvision);
      if (!kEverySource.count(job.name)) continue;
      assert_check(job, kPath);
      assert_check(job, kUrl);
      // one request per file, downloaded whole into the cache
      const auto asked = requests.find("/" + job.url_name);
      BOOST_TEST((asked == requests.end() ? 0 : asked->second) == 1);
      BOOST_TEST(job.downloaded_bytes == job.info["bytes"].get<std::uintmax_t>());
    }
  }
  BOOST_TEST(total_requests == static_cast<int>(kEverySource.size()));

  // The second check of kTwice's URL found the file in the cache: no request (above), the
  // same file.
  const auto twice = std::find_if(jobs.begin(), jobs.end(), [](const Job& j) { return j.name == kTwice; });
  BOOST_REQUIRE(twice != jobs.end());
  assert_check(*twice, kUrlAgain);
  BOOST_TEST(twice->same_download);

  // Nothing else is left in the cache: torchvision's files (the downloads were removed after
  // their checks), no partial or temporary file.
  std::vector<std::string> cached, expected;
  for (const auto& e : fs::directory_iterator(hub)) cached.push_back(e.path().filename().string());
  for (const auto& job : jobs) expected.push_back(job.info["torchvision_file"]);
  BOOST_TEST(sorted(cached) == sorted(expected), boost::test_tools::per_element());

  // Where the time went (not asserted: the machine may be busy).
  double per_source[3] = {0, 0, 0};
  std::uintmax_t bytes = 0;
  std::pair<double, std::string> slowest{0, ""};
  for (const auto& job : jobs) {
    bytes += job.info["bytes"].get<std::uintmax_t>();
    for (Source s : {kPath, kTorchvision, kUrl}) {
      if (!job.checks[s].ran) continue;
      per_source[s] += job.checks[s].seconds;
      slowest = std::max(slowest, {job.checks[s].seconds, job.name + " from " + kSourceNames[s]});
    }
  }
  BOOST_TEST_MESSAGE(kBackbones.size() + kEverySource.size() * 2 + 1 << " checks in " << total_seconds << " s with " << worker_count()
                     << " workers; Python wrote " << bytes / 1000000 << " MB in " << write_seconds
                     << " s meanwhile; checks by source: path " << per_source[kPath] << " s, torchvision "
                     << per_source[kTorchvision] << " s, url " << per_source[kUrl] << " s; slowest: "
                     << slowest.second << ", " << slowest.first << " s");
}
