// graft launch: torchrun's job for machines without Python. It starts N ranks of this
// same binary on this node with torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, GROUP_RANK, TORCHELASTIC_RESTART_COUNT),
// watches them, and ends them all when one fails: a rank that exits non-zero or is killed
// makes the launcher stop the others (SIGTERM, then SIGKILL after a grace period) and
// name it. With --max-restarts K the whole group starts again with --resume auto, up to
// K times. SIGTERM or SIGINT to the launcher goes to every rank (they agree on a step,
// rank 0 saves, all exit 75) and the launcher exits with their code.
#include "launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "graft/error.h"
#include "graft/log.h"

namespace graft::cli {

namespace {

std::atomic<int> stop_signal{0};

extern "C" void on_launcher_signal(int sig) { stop_signal.store(sig); }

/// A free TCP port on 127.0.0.1 (a single-node run without --master).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error::runtime(fmt::format("launch: no socket for a free port: {}", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw Error::runtime(fmt::format("launch: no free port on 127.0.0.1: {}", std::strerror(errno)));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string exit_text(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return fmt::format("was killed by signal {} ({})", sig, strsignal(sig));
  }
  return "ended";
}

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

struct Rank {
  int rank = 0, local = 0;
  pid_t pid = -1;
  bool running = false;
  int status = 0;
};

class Group {
 public:
  Group(const LaunchArgs& a, std::string master_addr, int master_port, int attempt, std::vector<std::string> command)
      : a_(a), addr_(std::move(master_addr)), port_(master_port), attempt_(attempt), command_(std::move(command)) {}

  void start() {
    for (int i = 0; i < a_.nproc_per_node; ++i) {
      Rank r;
      r.local = i;
      r.rank = a_.node_rank * a_.nproc_per_node + i;
      r.pid = spawn(r);
      r.running = true;
      log::info("launch: rank {} is pid {}", r.rank, r.pid);
      ranks_.push_back(r);
    }
  }

  /// Waits for every rank; stops the others when one fails. Returns the group's code:
  /// 0, the ranks' shared interrupt code (75), or non-zero for a failure (`failed`).
  int wait(bool& failed) {
    failed = false;
    bool stopping = false;
    bool forwarded = false;
    auto killed_at = std::chrono::steady_clock::time_point::max();
    int code = 0;
    while (std::any_of(ranks_.begin(), ranks_.end(), [](const Rank& r) { return r.running; })) {
      if (const int sig = stop_signal.load(); sig != 0 && !forwarded) {
        log::warn("launch: {} received: passing it to every rank (they save and stop)", strsignal(sig));
        signal_all(SIGTERM);
        forwarded = true;
      }
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid > 0) {
        auto it = std::find_if(ranks_.begin(), ranks_.end(), [&](const Rank& r) { return r.pid == pid; });
        if (it == ranks_.end()) continue;
        it->running = false;
        it->status = status;
        const int c = exit_code(status);
        if (c != 0 && !stopping && !forwarded) {
          if (c == 75) {
            // an interrupt the ranks agreed on: the others end the same way by themselves
            code = 75;
            continue;
          }
          log::error("launch: rank {} (pid {}) {}: stopping the other ranks", it->rank, pid, exit_text(status));
          failed = true;
          stopping = true;
          code = c;
          signal_all(SIGTERM);
          killed_at = std::chrono::steady_clock::now() + std::chrono::seconds(a_.grace_seconds);
        } else if (c != 0 && code == 0) {
          code = c;
        }
        continue;
      }
      if (stopping && std::chrono::steady_clock::now() >= killed_at) {
        log::warn("launch: ranks still running {} s after SIGTERM: SIGKILL", a_.grace_seconds);
        signal_all(SIGKILL);
        killed_at = std::chrono::steady_clock::time_point::max();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return failed ? (code == 0 ? 1 : code) : code;
  }

 private:
  pid_t spawn(const Rank& r) {
    std::map<std::string, std::string> env = {
        {"RANK", std::to_string(r.rank)},
        {"WORLD_SIZE", std::to_string(a_.nproc_per_node * a_.nnodes)},
        {"LOCAL_RANK", std::to_string(r.local)},
        {"LOCAL_WORLD_SIZE", std::to_string(a_.nproc_per_node)},
        {"GROUP_RANK", std::to_string(a_.node_rank)},
        {"MASTER_ADDR", addr_},
        {"MASTER_PORT", std::to_string(port_)},
        {"TORCHELASTIC_RESTART_COUNT", std::to_string(attempt_)},
        {"GRAFT_RDZV_TIMEOUT", std::to_string(a_.rdzv_timeout)},
        {"GRAFT_DIST_TIMEOUT", std::to_string(a_.timeout)},
    };
    std::vector<std::string> args = {"graft"};
    args.insert(args.end(), command_.begin(), command_.end());
    const pid_t pid = ::fork();
    if (pid < 0) throw Error::runtime(fmt::format("launch: cannot start rank {}: {}", r.rank, std::strerror(errno)));
    if (pid == 0) {
      ::unsetenv("TORCHELASTIC_USE_AGENT_STORE");  // graft launch's rank 0 hosts the store
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      // the ranks end with the launcher
      std::vector<char*> argv;
      for (auto& s : args) argv.push_back(s.data());
      argv.push_back(nullptr);
      ::signal(SIGTERM, SIG_DFL);
      ::signal(SIGINT, SIG_DFL);
      ::execv("/proc/self/exe", argv.data());
      std::fprintf(stderr, "error: launch: cannot run graft for rank %d: %s\n", r.rank, std::strerror(errno));
      ::_exit(127);
    }
    return pid;
  }

  void signal_all(int sig) {
    for (const auto& r : ranks_)
      if (r.running) ::kill(r.pid, sig);
  }

  const LaunchArgs& a_;
  std::string addr_;
  int port_;
  int attempt_;
  std::vector<std::string> command_;
  std::vector<Rank> ranks_;
};

}  // namespace

int cmd_launch(const LaunchArgs& a) {
  if (a.nproc_per_node < 1) throw Error::usage(fmt::format("launch: --nproc-per-node must be at least 1, got {}", a.nproc_per_node));
  if (a.nnodes < 1) throw Error::usage(fmt::format("launch: --nnodes must be at least 1, got {}", a.nnodes));
  if (a.node_rank < 0 || a.node_rank >= a.nnodes)
    throw Error::usage(fmt::format("launch: --node-rank {} is not in [0, {}) (--nnodes {})", a.node_rank, a.nnodes, a.nnodes));
  if (a.max_restarts < 0) throw Error::usage(fmt::format("launch: --max-restarts must not be negative, got {}", a.max_restarts));
  if (a.command.empty() || a.command.front() != "train")
    throw Error::usage(fmt::format("launch: expected the command to run after '--': train RECIPE [--set ...], got '{}'",
                                   a.command.empty() ? "" : a.command.front()));
  if (a.nnodes > 1 && a.master.empty())
    throw Error::usage("launch: --nnodes above 1 needs --master ADDR:PORT (the address of node 0, reachable from every node)");
  std::string addr = "127.0.0.1";
  int port = 0;
  if (!a.master.empty()) {
    const auto colon = a.master.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == a.master.size())
      throw Error::usage(fmt::format("launch: --master {}: expected ADDR:PORT", a.master));
    addr = a.master.substr(0, colon);
    try {
      std::size_t used = 0;
      port = std::stoi(a.master.substr(colon + 1), &used);
      if (used != a.master.size() - colon - 1 || port < 1 || port > 65535) throw std::out_of_range("port");
    } catch (const std::exception&) {
      throw Error::usage(fmt::format("launch: --master {}: the port must be a number in [1, 65535]", a.master));
    }
  }

  struct sigaction sa {};
  sa.sa_handler = on_launcher_signal;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);

  std::vector<std::string> command = a.command;
  for (int attempt = 0;; ++attempt) {
    const int p = port != 0 ? port : free_port();
    log::info("launch: {} rank(s) on this node (node {} of {}), master {}:{}{}", a.nproc_per_node, a.node_rank, a.nnodes,
              addr, p, attempt > 0 ? fmt::format(", restart {} of {}", attempt, a.max_restarts) : "");
    Group group(a, addr, p, attempt, command);
    group.start();
    bool failed = false;
    const int code = group.wait(failed);
    if (!failed || stop_signal.load() != 0) {
      if (code == 0) log::info("launch: every rank finished");
      else log::warn("launch: the ranks ended with code {}", code);
      return code;
    }
    if (attempt >= a.max_restarts) {
      log::error("launch: the group failed{}", a.max_restarts > 0 ? fmt::format(" after {} restart(s)", attempt) : "");
      return code;
    }
    // go on from the newest checkpoint of the run
    if (std::find(command.begin(), command.end(), "--resume") == command.end()) {
      command.push_back("--resume");
      command.push_back("auto");
    }
    log::warn("launch: restarting the group with --resume auto ({} of {})", attempt + 1, a.max_restarts);
  }
}

}  // namespace graft::cli
