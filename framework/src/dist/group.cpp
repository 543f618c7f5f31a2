// The process group over c10d: a TCPStore rendezvous (rank 0 hosts it, or torchrun's agent
// does), then ProcessGroupGloo (or NCCL) on top. Every c10d failure is turned into one
// graft::Error line that names this rank, the collective, and, when the failing rank said
// why through the store, that rank's own line.
#include "graft/host/dist.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>

#include <fmt/format.h>
#include <torch/version.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/types.h>

#if GRAFT_HAS_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if GRAFT_HAS_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "graft/error.h"

namespace graft::dist {

namespace {

// 2.x splits ProcessGroup (the dispatcher) from Backend (what Gloo and NCCL implement).
#if TORCH_VERSION_MAJOR >= 2
using BackendBase = c10d::Backend;
#else
using BackendBase = c10d::ProcessGroup;
#endif

std::string first_line(const std::string& s) {
  std::string line = s.substr(0, s.find('\n'));
  // c10d's messages carry a C++ source location in brackets at their start
  if (line.rfind("[", 0) == 0 && line.find("] ") != std::string::npos) line = line.substr(line.find("] ") + 2);
  return line;
}

std::string what_of(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return first_line(c->what_without_backtrace());
  return first_line(e.what());
}

std::optional<std::string> variable(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

long long integer(const char* name, const std::string& text, long long min, long long max) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end == text.c_str() || *end != '\0' || v < min || v > max)
    throw Error::usage(fmt::format("{}={}: expected an integer in [{}, {}]", name, text, min, max));
  return v;
}

std::chrono::milliseconds seconds_variable(const char* name, std::chrono::milliseconds fallback) {
  const auto v = variable(name);
  if (!v) return fallback;
  return std::chrono::seconds(integer(name, *v, 1, 7 * 24 * 3600));
}

bool is_loopback(const std::string& host) { return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1"; }

}  // namespace

std::string Env::who() const { return fmt::format("rank {}/{}", rank, world); }

std::optional<Env> Env::from_environment() {
  const auto world = variable("WORLD_SIZE");
  if (!world) return std::nullopt;
  Env env;
  env.world = static_cast<int>(integer("WORLD_SIZE", *world, 1, 1 << 20));
  const auto rank = variable("RANK");
  if (!rank) throw Error::usage("WORLD_SIZE is set but RANK is not: start the ranks with torchrun or graft launch");
  env.rank = static_cast<int>(integer("RANK", *rank, 0, env.world - 1));
  env.local_world = static_cast<int>(
      variable("LOCAL_WORLD_SIZE") ? integer("LOCAL_WORLD_SIZE", *variable("LOCAL_WORLD_SIZE"), 1, env.world) : env.world);
  env.local_rank = static_cast<int>(variable("LOCAL_RANK") ? integer("LOCAL_RANK", *variable("LOCAL_RANK"), 0, env.local_world - 1)
                                                           : env.rank % env.local_world);
  if (const auto addr = variable("MASTER_ADDR")) env.master_addr = *addr;
  if (const auto port = variable("MASTER_PORT")) env.master_port = static_cast<int>(integer("MASTER_PORT", *port, 1, 65535));
  if (const auto agent = variable("TORCHELASTIC_USE_AGENT_STORE")) env.agent_store = *agent == "True" || *agent == "true" || *agent == "1";
  if (env.agent_store)
    env.store_prefix = "/worker/attempt_" + variable("TORCHELASTIC_RESTART_COUNT").value_or("0");
  env.connect_timeout = seconds_variable("GRAFT_RDZV_TIMEOUT", env.connect_timeout);
  env.timeout = seconds_variable("GRAFT_DIST_TIMEOUT", env.timeout);
  return env;
}

// ---- Pending -----------------------------------------------------------------------

struct Pending::Impl {
  c10::intrusive_ptr<c10d::Work> work;
  std::function<void(const std::exception&)> fail;  // throws the group's error line
};

Pending::Pending() = default;
Pending::~Pending() = default;
Pending::Pending(Pending&&) noexcept = default;
Pending& Pending::operator=(Pending&&) noexcept = default;

void Pending::wait() {
  if (!impl_ || !impl_->work) return;
  auto work = std::move(impl_->work);
  try {
    work->wait();
  } catch (const std::exception& e) {
    impl_->fail(e);
  }
}

// ---- Group -------------------------------------------------------------------------

struct Group::Impl {
  Env env;
  std::string backend;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<BackendBase> pg;

  /// Throws the one line for a failed `what`.
  [[noreturn]] void fail(const std::string& what, const std::exception& e) const {
    std::string why;
    try {
      // the failing rank's own line, when it could leave one
      if (store && store->check({"failed"})) {
        const auto bytes = store->get("failed");
        why = std::string(bytes.begin(), bytes.end());
      }
    } catch (...) {
    }
    if (why.empty()) why = "another rank stopped or was killed (its own log says why)";
    throw Error::runtime(fmt::format("{}: {} failed: {}; {}", env.who(), what, what_of(e), why));
  }

  /// NCCL reduces CUDA tensors only: CPU values (metric sums, messages) travel through
  /// this rank's device and back.
  at::Tensor on_device(const at::Tensor& t) const {
    if (backend != "nccl" || t.is_cuda()) return t;
    return t.to(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank)));
  }
  static void back(at::Tensor& cpu, const at::Tensor& used) {
    if (!used.is_same(cpu)) cpu.copy_(used.cpu());
  }

  template <class F> auto guarded(const std::string& what, F&& f) {
    try {
      return f();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      fail(what, e);
    }
  }
};

Group::Group(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Group::~Group() = default;

const Env& Group::env() const { return impl_->env; }
const std::string& Group::backend() const { return impl_->backend; }

std::shared_ptr<Group> Group::connect(const Env& env, const std::string& backend_name, bool cuda) {
  auto impl = std::make_unique<Impl>();
  impl->env = env;
  std::string backend = backend_name;
  if (backend == "auto") backend = cuda ? "nccl" : "gloo";
  if (backend != "gloo" && backend != "nccl")
    throw Error::usage(fmt::format("dist backend '{}': expected auto, gloo or nccl", backend_name));
  impl->backend = backend;
  const std::string master = fmt::format("{}:{}", env.master_addr, env.master_port);

  // rendezvous
  const bool server = !env.agent_store && env.rank == 0;
  try {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(env.master_port);
    opts.isServer = server;
    opts.numWorkers = env.agent_store ? c10::nullopt : c10::optional<std::size_t>(env.world);
    opts.waitWorkers = !env.agent_store;
    opts.timeout = env.connect_timeout;
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts);
    if (env.agent_store) store = c10::make_intrusive<c10d::PrefixStore>(env.store_prefix, store);
    impl->store = c10::make_intrusive<c10d::PrefixStore>("graft", store);
  } catch (const std::exception& e) {
    const std::string why = what_of(e);
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(env.connect_timeout).count();
    if (server && (why.find("in use") != std::string::npos || why.find("EADDRINUSE") != std::string::npos))
      throw Error::runtime(fmt::format("{}: cannot listen on {} (MASTER_ADDR:MASTER_PORT): the port is in use; "
                                       "choose another port (MASTER_PORT, or graft launch --master)",
                                       env.who(), master));
    if (server)
      throw Error::runtime(fmt::format("{}: the rendezvous at {} (this rank hosts it) did not complete within {} s "
                                       "(GRAFT_RDZV_TIMEOUT): {}: did every rank start?",
                                       env.who(), master, secs, why));
    throw Error::runtime(fmt::format("{}: cannot reach the master at {} (MASTER_ADDR:MASTER_PORT) within {} s "
                                     "(GRAFT_RDZV_TIMEOUT): {}",
                                     env.who(), master, secs, why));
  }

  try {
    if (backend == "gloo") {
#if GRAFT_HAS_GLOO
      auto options = c10d::ProcessGroupGloo::Options::create(env.timeout);
      if (const auto ifname = variable("GLOO_SOCKET_IFNAME"))
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(*ifname));
      else if (is_loopback(env.master_addr))
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      options->threads = 2;
      impl->store->setTimeout(env.connect_timeout);
      impl->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, env.rank, env.world, options);
#else
      throw Error::usage("this graft was built without Gloo (libgloo-dev): it cannot train over several processes on the CPU");
#endif
    } else {
#if GRAFT_HAS_NCCL
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = env.timeout;
      impl->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl->store, env.rank, env.world, options);
#else
      throw Error::usage("this graft was built without NCCL: use the gloo backend (trainer.dist_backend: gloo)");
#endif
    }
    impl->store->setTimeout(env.timeout);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error::runtime(fmt::format("{}: joining the {} process group at {} failed: {}", env.who(), backend, master, what_of(e)));
  }
  return std::shared_ptr<Group>(new Group(std::move(impl)));
}

Pending Group::all_reduce_sum_async(at::Tensor& tensor, const std::string& what) {
  Pending p;
  p.impl_ = std::make_unique<Pending::Impl>();
  Impl* impl = impl_.get();
  p.impl_->fail = [impl, what](const std::exception& e) { impl->fail(what, e); };
  std::vector<at::Tensor> v{tensor};
  p.impl_->work = impl_->guarded(what, [&] { return impl_->pg->allreduce(v); });
  return p;
}

void Group::all_reduce_sum(at::Tensor& tensor, const std::string& what) {
  auto t = impl_->on_device(tensor);
  all_reduce_sum_async(t, what).wait();
  Impl::back(tensor, t);
}

void Group::broadcast(at::Tensor& tensor, int root, const std::string& what) {
  c10d::BroadcastOptions opts;
  opts.rootRank = root;
  auto t = impl_->on_device(tensor);
  std::vector<at::Tensor> v{t};
  impl_->guarded(what, [&] { impl_->pg->broadcast(v, opts)->wait(); return 0; });
  Impl::back(tensor, t);
}

void Group::broadcast_all(const std::vector<at::Tensor>& tensors, int root, const std::string& what) {
  // Gloo reads several tensors as one per device: flatten those of a dtype into one
  std::vector<c10::ScalarType> dtypes;
  for (const auto& t : tensors)
    if (std::find(dtypes.begin(), dtypes.end(), t.scalar_type()) == dtypes.end()) dtypes.push_back(t.scalar_type());
  for (const auto dtype : dtypes) {
    std::vector<at::Tensor> same;
    for (const auto& t : tensors)
      if (t.scalar_type() == dtype) same.push_back(t);
    std::vector<at::Tensor> flat_views;
    for (const auto& t : same) flat_views.push_back(t.detach().reshape({-1}));
    auto flat = torch::cat(flat_views);
    broadcast(flat, root, what);
    std::int64_t at = 0;
    torch::NoGradGuard no_grad;
    for (auto& t : same) {
      const auto n = t.numel();
      t.detach().copy_(flat.narrow(0, at, n).view(t.sizes()));
      at += n;
    }
  }
}

void Group::barrier(const std::string& what) {
  impl_->guarded(what, [&] { impl_->pg->barrier()->wait(); return 0; });
}

std::vector<std::string> Group::all_gather(const std::string& bytes, const std::string& what) {
  const int w = size();
  // the lengths first, then every rank's bytes padded to the longest
  std::vector<at::Tensor> len_in{impl_->on_device(torch::tensor({static_cast<std::int64_t>(bytes.size())}, torch::kInt64))};
  std::vector<std::vector<at::Tensor>> len_out(1);
  for (int r = 0; r < w; ++r) len_out[0].push_back(impl_->on_device(torch::empty({1}, torch::kInt64)));
  impl_->guarded(what, [&] { impl_->pg->allgather(len_out, len_in)->wait(); return 0; });
  std::int64_t longest = 1;
  for (const auto& t : len_out[0]) longest = std::max(longest, t.item<std::int64_t>());
  auto in = torch::zeros({longest}, torch::kUInt8);
  std::memcpy(in.data_ptr(), bytes.data(), bytes.size());
  std::vector<at::Tensor> data_in{impl_->on_device(in)};
  std::vector<std::vector<at::Tensor>> data_out(1);
  for (int r = 0; r < w; ++r) data_out[0].push_back(impl_->on_device(torch::empty({longest}, torch::kUInt8)));
  impl_->guarded(what, [&] { impl_->pg->allgather(data_out, data_in)->wait(); return 0; });
  std::vector<std::string> out;
  for (int r = 0; r < w; ++r) {
    const auto n = static_cast<std::size_t>(len_out[0][static_cast<std::size_t>(r)].item<std::int64_t>());
    const auto got = data_out[0][static_cast<std::size_t>(r)].cpu();
    out.emplace_back(static_cast<const char*>(got.data_ptr()), n);
  }
  return out;
}

std::string Group::broadcast_bytes(const std::string& bytes, const std::string& what) {
  auto len = torch::tensor({static_cast<std::int64_t>(bytes.size())}, torch::kInt64);
  broadcast(len, 0, what);
  const auto n = len.item<std::int64_t>();
  auto data = torch::zeros({std::max<std::int64_t>(n, 1)}, torch::kUInt8);
  if (rank() == 0) std::memcpy(data.data_ptr(), bytes.data(), bytes.size());
  broadcast(data, 0, what);
  return std::string(static_cast<const char*>(data.data_ptr()), static_cast<std::size_t>(n));
}

void Group::announce_failure(const std::string& line) noexcept {
  try {
    const std::string text = fmt::format("{} failed: {}", impl_->env.who(), line);
    impl_->store->set("failed", std::vector<std::uint8_t>(text.begin(), text.end()));
  } catch (...) {
  }
}

}  // namespace graft::dist
