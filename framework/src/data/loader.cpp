// The loader: an epoch's order is a permutation seeded by (seed, epoch); batch b holds
// order[b * batch_size ...]; sample i of epoch e is transformed with its own
// Rng(seed_for(seed, e, i)). Worker w makes batches first + w, first + w + W, ... into its
// own queue of at most `prefetch` batches, and next() takes them round-robin, so the
// batches and their order never depend on the number of workers or on timing.
#include "graft/host/loader.h"
#include "graft/host/registry.h"

#include "io/dtype_name.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>
#include <dlfcn.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

namespace graft {

namespace {

std::string shape_str(c10::IntArrayRef s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

/// The same error with "sample N: " in front, keeping its kind.
[[noreturn]] void rethrow_for_sample(std::int64_t index) {
  const std::string at = "sample " + std::to_string(index) + ": ";
  try {
    throw;
  } catch (const PluginFailure& f) {  // a transform: "transform 'x' (lib) failed on sample N: ..."
    throw f.within(" on sample " + std::to_string(index));
  } catch (const Error& e) {
    throw Error(e.kind(), at + e.message(), e.where());
  } catch (const c10::Error& e) {
    throw Error::runtime(at + first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    throw Error::runtime(at + first_line(e.what()));
  }
}

// The tag that keeps the order's random stream apart from every sample's (an index no
// dataset reaches).
constexpr std::uint64_t kOrderStream = ~0ULL;

// A worker makes one sample at a time, and the workers are the loader's parallelism: their
// LibTorch ops run on the worker thread alone. Left to LibTorch, each worker thread would
// start an OpenMP team of its own on ops over 32K elements (a 224x224 image's), whose
// threads spin after each op beside the training's. OpenMP's thread count is per thread;
// LibTorch sets it up lazily on a thread's first parallel op, so that is done first.
void serial_intra_op_here() {
  at::internal::lazy_init_num_threads();
  using SetThreads = void (*)(int);
  static const auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (set != nullptr) set(1);  // a LibTorch without OpenMP has no per-thread count to set
}

}  // namespace

struct Loader::Impl {
  std::shared_ptr<Dataset> data;
  std::vector<std::shared_ptr<Transform>> transforms;
  LoaderOptions options;

  // The epoch being served: this rank's samples; batch b starts at order[base + (b - first) * batch_size].
  std::int64_t epoch = 0;
  std::vector<std::int64_t> order;
  std::int64_t first = 0, base = 0, next_batch = 0, end_batch = 0;
  std::int64_t offset = 0;  // samples of the epoch (all ranks) before `first`
  bool started = false;
  std::exception_ptr failed;

  // Workers.
  struct Item {
    std::optional<Batch> batch;
    std::exception_ptr error;
  };
  std::mutex mutex;
  std::condition_variable space, ready;
  std::vector<std::deque<Item>> queues;
  bool stopping = false;
  std::vector<std::thread> threads;

  Batch make_batch(std::int64_t b) const {
    const auto begin = base + (b - first) * options.batch_size;
    const auto end = std::min<std::int64_t>(begin + options.batch_size, static_cast<std::int64_t>(order.size()));
    Batch batch;
    std::vector<torch::Tensor> inputs;
    std::vector<std::int64_t> targets;
    for (auto k = begin; k < end; ++k) {
      const auto index = order[static_cast<std::size_t>(k)];
      try {
        Rng rng(Rng::seed_for(options.seed, static_cast<std::uint64_t>(epoch), static_cast<std::uint64_t>(index)));
        // An image file goes to the first transform still encoded (a crop decodes only its region).
        LazySample lazy = transforms.empty() ? LazySample{} : data->get_lazy(index);
        Sample s;
        std::size_t next = 0;
        if (lazy.image) {
          s.input = transforms[next++]->apply_lazy(*lazy.image, rng);
          s.target = lazy.target;
        } else {
          s = data->get(index);
        }
        torch::Tensor x = s.input;
        for (; next < transforms.size(); ++next) x = transforms[next]->apply(x, rng);
        if (!x.is_floating_point())
          throw Error::usage("the transforms give " + dtype_name(x.scalar_type()) +
                             " images; end them with to_tensor");
        if (!inputs.empty() && x.sizes() != inputs.front().sizes())
          throw Error::usage("its image is " + shape_str(x.sizes()) + " but sample " + std::to_string(batch.indices[0]) +
                             " of the same batch is " + shape_str(inputs.front().sizes()) +
                             "; resize or crop to one size");
        inputs.push_back(x.contiguous());
        targets.push_back(s.target);
        batch.indices.push_back(index);
      } catch (...) {
        rethrow_for_sample(index);
      }
    }
    batch.inputs = torch::stack(inputs);
    batch.targets = torch::tensor(targets, torch::kInt64);
    return batch;
  }

  void work(std::size_t w) {
    serial_intra_op_here();
    const auto n = static_cast<std::int64_t>(queues.size());
    for (auto b = first + static_cast<std::int64_t>(w); b < end_batch; b += n) {
      {
        std::unique_lock<std::mutex> lock(mutex);
        space.wait(lock, [&] { return stopping || static_cast<std::int64_t>(queues[w].size()) < options.prefetch; });
        if (stopping) return;
      }
      Item item;
      try {
        item.batch = make_batch(b);
      } catch (...) {
        item.error = std::current_exception();
      }
      const bool failed_here = static_cast<bool>(item.error);
      {
        std::lock_guard<std::mutex> lock(mutex);
        queues[w].push_back(std::move(item));
      }
      ready.notify_all();
      if (failed_here) return;
    }
  }

  /// Serves batches first..end-1 of `epoch` from `mine` (this rank's samples; batch
  /// `first` starts at mine[base_at]); stops any epoch in progress.
  void serve(std::int64_t e, std::vector<std::int64_t> mine, std::int64_t first_batch, std::int64_t base_at,
             std::int64_t offset_at, std::int64_t end) {
    stop();
    epoch = e;
    order = std::move(mine);
    first = next_batch = first_batch;
    base = base_at;
    offset = offset_at;
    end_batch = end;
    started = true;
    failed = nullptr;
    const auto n = std::min<std::int64_t>(options.workers, end - first_batch);
    if (n <= 0) return;
    queues.resize(static_cast<std::size_t>(n));
    for (std::size_t w = 0; w < static_cast<std::size_t>(n); ++w) threads.emplace_back([this, w] { work(w); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stopping = true;
    }
    space.notify_all();
    for (auto& t : threads) t.join();
    threads.clear();
    queues.clear();
    stopping = false;
  }
};

Loader::Loader(std::shared_ptr<Dataset> data, std::vector<std::shared_ptr<Transform>> transforms,
               LoaderOptions options)
    : impl_(std::make_unique<Impl>()) {
  if (!data) throw Error::runtime("Loader: no dataset");
  if (options.batch_size < 1) throw Error::usage("batch_size must be at least 1, got " + std::to_string(options.batch_size));
  if (options.workers < 0) throw Error::usage("workers must not be negative, got " + std::to_string(options.workers));
  if (options.prefetch < 1) throw Error::usage("prefetch must be at least 1, got " + std::to_string(options.prefetch));
  impl_->data = std::move(data);
  impl_->transforms = std::move(transforms);
  impl_->options = options;
}

Loader::~Loader() { impl_->stop(); }

std::int64_t Loader::size() const { return impl_->data->size(); }

namespace {

// This rank's share of an epoch's `n` samples (from the order's `offset`-th on).
std::int64_t share(const LoaderOptions& o, std::int64_t n) {
  if (o.world <= 1) return n;
  if (o.pad) return (n + o.world - 1) / o.world;
  return n > o.rank ? (n - o.rank + o.world - 1) / o.world : 0;
}

std::int64_t batches_of(const LoaderOptions& o, std::int64_t samples) {
  const auto bs = o.batch_size;
  return o.drop_last ? samples / bs : (samples + bs - 1) / bs;
}

}  // namespace

std::int64_t Loader::batches_per_epoch() const { return batches_of(impl_->options, share(impl_->options, size())); }

std::int64_t Loader::epoch_samples() const {
  const auto& o = impl_->options;
  return o.world > 1 && o.pad ? share(o, size()) * o.world : size();
}

std::int64_t Loader::samples_done(std::int64_t batch) const {
  const auto& m = *impl_;
  const auto served = m.offset + (batch + 1 - m.first) * m.options.batch_size * m.options.world;
  return std::min(served, epoch_samples());
}

const LoaderOptions& Loader::options() const { return impl_->options; }

std::vector<std::int64_t> Loader::order(std::int64_t epoch) const {
  const auto n = size();
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
  if (!impl_->options.shuffle) return order;
  // Fisher-Yates with graft's own draws: the same permutation on every platform.
  Rng rng(Rng::seed_for(impl_->options.seed, static_cast<std::uint64_t>(epoch), kOrderStream));
  for (std::int64_t i = n - 1; i > 0; --i)
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(rng.integer(0, i))]);
  return order;
}

namespace {

// Rank r's samples of `all` from `offset` on: padded by repeating the start to a multiple of
// the world size (when pad), then every world-th from the r-th.
std::vector<std::int64_t> deal(const LoaderOptions& o, const std::vector<std::int64_t>& all, std::int64_t offset) {
  std::vector<std::int64_t> rest(all.begin() + std::min<std::int64_t>(offset, static_cast<std::int64_t>(all.size())), all.end());
  if (o.world <= 1) return rest;
  if (o.pad && !rest.empty())
    for (std::size_t i = 0; rest.size() % static_cast<std::size_t>(o.world) != 0; ++i) rest.push_back(rest[i]);
  std::vector<std::int64_t> mine;
  for (std::size_t i = static_cast<std::size_t>(o.rank); i < rest.size(); i += static_cast<std::size_t>(o.world))
    mine.push_back(rest[i]);
  return mine;
}

}  // namespace

std::int64_t Loader::start_at_sample(std::int64_t epoch, std::int64_t offset) {
  auto& m = *impl_;
  if (offset < 0 || offset > epoch_samples())
    throw Error::usage("cannot start at sample " + std::to_string(offset) + " of an epoch of " +
                       std::to_string(epoch_samples()) + " samples");
  // samples padded in by the earlier world size are already past: the order itself goes on
  const auto rest = deal(m.options, order(epoch), std::min(offset, size()));
  const auto first = std::max<std::int64_t>(0, batches_per_epoch() - batches_of(m.options, static_cast<std::int64_t>(rest.size())));
  const auto batches = batches_of(m.options, static_cast<std::int64_t>(rest.size()));
  auto mine = rest;
  if (m.options.drop_last) mine.resize(static_cast<std::size_t>(batches * m.options.batch_size));
  m.serve(epoch, std::move(mine), first, 0, offset, first + batches);
  return first;
}

void Loader::start(std::int64_t epoch, std::int64_t first_batch) {
  const auto batches = batches_per_epoch();
  if (epoch < 0) throw Error::usage("epoch must not be negative, got " + std::to_string(epoch));
  if (first_batch < 0 || first_batch > batches)
    throw Error::usage("cannot start at batch " + std::to_string(first_batch) + " of an epoch of " +
                       std::to_string(batches) + " batches");
  const auto& o = impl_->options;
  auto mine = deal(o, order(epoch), 0);
  if (o.drop_last) mine.resize(static_cast<std::size_t>(batches * o.batch_size));
  impl_->serve(epoch, std::move(mine), first_batch, first_batch * o.batch_size, first_batch * o.batch_size * o.world, batches);
}

std::optional<Batch> Loader::next() {
  auto& m = *impl_;
  if (!m.started) start(0);
  if (m.failed) std::rethrow_exception(m.failed);
  if (m.next_batch >= m.end_batch) return std::nullopt;
  const auto b = m.next_batch;
  if (m.threads.empty()) {
    ++m.next_batch;
    try {
      return m.make_batch(b);
    } catch (...) {
      m.failed = std::current_exception();
      throw;
    }
  }
  const auto w = static_cast<std::size_t>((b - m.first) % static_cast<std::int64_t>(m.queues.size()));
  Impl::Item item;
  {
    std::unique_lock<std::mutex> lock(m.mutex);
    m.ready.wait(lock, [&] { return !m.queues[w].empty(); });
    item = std::move(m.queues[w].front());
    m.queues[w].pop_front();
  }
  m.space.notify_all();
  ++m.next_batch;
  if (item.error) {
    m.failed = item.error;
    std::rethrow_exception(item.error);
  }
  return std::move(item.batch);
}

}  // namespace graft
