// The fit loop: data -> model -> loss -> backward -> clip -> step, with hooks at every
// stage, validation, schedulers, the run dir and the final report.
#include "graft/trainer.h"

#include <dlfcn.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "checkpoint_io.h"
#include "compat.h"
#include "graft/checkpoint.h"
#include "graft/hooks.h"
#include "graft/loader.h"
#include "graft/metrics.h"
#include "graft/model.h"
#include "graft/plan.h"
#include "graft/schedule.h"
#include "graft/serialize.h"
#include "graft/version.h"
#include "graft/weights.h"
#include "parallel.h"
#include "run_output.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace graft {

const Schema& trainer_schema() {
  static const Schema schema = {
      KeySpec("epochs", 10, "epochs to train"),
      KeySpec("max_steps", 0, "stop after this many optimizer steps (0: no limit)"),
      KeySpec("val_every", 1, "validate every N epochs (0: never)"),
      KeySpec("log_every", 50, "a log line and a metrics.jsonl record every N optimizer steps"),
      KeySpec("accumulate", 1, "batches whose gradients are summed before each optimizer step"),
      KeySpec("clip_grad_norm", ValueType::number, "~", "clip the gradients' total 2-norm to this"),
      KeySpec("clip_grad_value", ValueType::number, "~", "clip every gradient element to [-v, v]"),
      KeySpec("device", ValueType::any, "auto", "cpu, cuda, cuda:N, auto, or a list of CUDA devices (DataParallel)"),
      KeySpec("threads", ValueType::any, "auto", "intra-op CPU threads: a number, or auto (= cores)"),
      KeySpec("amp", ValueType::string, "~", "mixed precision on CUDA: bf16 or fp16 (with loss scaling)"),
      KeySpec("channels_last", false, "keep 4-D activations in channels-last memory format"),
      KeySpec("test", true, "evaluate on the test split at the end and write the final report"),
      KeySpec("stop_on_nan", true, "stop with an error on a non-finite loss"),
      KeySpec("run_dir", "", "where the run writes, relative to the working directory (default runs/<recipe>-<date-time>; --run-dir wins)"),
  };
  return schema;
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// ---- devices and threads ------------------------------------------------------------

struct Devices {
  torch::Device main = torch::kCPU;
  std::vector<torch::Device> all;  ///< more than one: DataParallel
};

torch::Device parse_device(const Config& at, const std::string& text) {
  if (text == "cpu") return torch::kCPU;
  if (text == "cuda" || text.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available())
      at.fail("'" + text + "' asked for, but this " + (GRAFT_HAS_CUDA ? "machine has no CUDA device" : "graft was built without CUDA"));
    torch::Device d = text == "cuda" ? torch::Device(torch::kCUDA, 0) : torch::Device(text);
    if (d.index() >= static_cast<int>(torch::cuda::device_count()))
      at.fail(fmt::format("'{}': there are {} CUDA devices", text, torch::cuda::device_count()));
    return d;
  }
  at.fail("expected cpu, cuda, cuda:N, auto or a list of CUDA devices, got '" + text + "'");
}

Devices resolve_devices(const Config& node) {
  Devices d;
  if (node.is_list()) {
    if (node.size() == 0) node.fail("an empty device list");
    for (const auto& item : node.items()) {
      auto dev = parse_device(item, item.as<std::string>());
      if (!dev.is_cuda()) item.fail("a device list is for DataParallel over CUDA devices; use device: cpu alone");
      d.all.push_back(dev);
    }
    if (d.all.size() > 1 && !GRAFT_HAS_CUDA) node.fail("DataParallel needs a graft built with CUDA");
  } else {
    const std::string text = node.is_null() ? "auto" : node.as<std::string>();
    d.all.push_back(text == "auto" ? (torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU))
                                   : parse_device(node, text));
  }
  d.main = d.all.front();
  return d;
}

int resolve_threads(const Config& node) {
  const std::string text = node.is_null() ? "auto" : node.scalar();
  if (text == "auto") return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int n = node.as<int>();
  if (n < 1) node.fail("must be >= 1 or auto");
  return n;
}

// ---- mixed precision ----------------------------------------------------------------

struct Amp {
  bool on = false;
  c10::ScalarType dtype = torch::kFloat;
  bool scaling = false;  // fp16: dynamic loss scaling, as torch.cuda.amp.GradScaler's defaults
  double scale = 65536.0;
  std::int64_t good_steps = 0;
};

/// Autocast for the calling thread while alive.
struct AutocastScope {
  explicit AutocastScope(const Amp& amp) : on(amp.on) {
    if (on) compat::set_cuda_autocast(true, amp.dtype);
  }
  ~AutocastScope() {
    if (on) {
      compat::set_cuda_autocast(false, torch::kFloat);
      compat::clear_autocast_cache();
    }
  }
  bool on;
};

// ---- the pieces of a run ------------------------------------------------------------

struct GroupInfo {
  std::string name;
  double base_lr = 0;
  std::optional<double> base_momentum;
};

double group_lr(const torch::optim::OptimizerParamGroup& g) { return g.options().get_lr(); }
void set_group_lr(torch::optim::OptimizerParamGroup& g, double lr) { g.options().set_lr(lr); }

void set_group_momentum(torch::optim::OptimizerParamGroup& g, double m) {
  auto& o = g.options();
  if (auto* p = dynamic_cast<torch::optim::SGDOptions*>(&o)) p->momentum(m);
  else if (auto* p = dynamic_cast<torch::optim::RMSpropOptions*>(&o)) p->momentum(m);
  else if (auto* p = dynamic_cast<torch::optim::AdamOptions*>(&o)) p->betas({m, std::get<1>(p->betas())});
  else if (auto* p = dynamic_cast<torch::optim::AdamWOptions*>(&o)) p->betas({m, std::get<1>(p->betas())});
}

std::optional<double> get_group_momentum(const torch::optim::OptimizerParamGroup& g) {
  const auto& o = g.options();
  if (auto* p = dynamic_cast<const torch::optim::SGDOptions*>(&o)) return p->momentum();
  if (auto* p = dynamic_cast<const torch::optim::RMSpropOptions*>(&o)) return p->momentum();
  if (auto* p = dynamic_cast<const torch::optim::AdamOptions*>(&o)) return std::get<0>(p->betas());
  if (auto* p = dynamic_cast<const torch::optim::AdamWOptions*>(&o)) return std::get<0>(p->betas());
  return std::nullopt;
}

std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--";
  const auto t = static_cast<std::int64_t>(s + 0.5);
  return t >= 3600 ? fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60) : fmt::format("{:02}:{:02}", t / 60, t % 60);
}

std::string recipe_stem(const Recipe& recipe) { return fs::path(recipe.file).stem().string(); }

std::string default_run_dir(const Recipe& recipe) {
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  fs::path dir = fs::path("runs") / (recipe_stem(recipe) + "-" + stamp);
  for (int k = 2; fs::exists(dir); ++k) dir = fs::path("runs") / fmt::format("{}-{}-{}", recipe_stem(recipe), stamp, k);
  return dir.string();
}

/// Metric plugins of the recipe's `metrics:` (default: accuracy).
std::vector<std::shared_ptr<Metric>> make_metrics(const Recipe& recipe, const Registry& registry) {
  std::vector<std::shared_ptr<Metric>> out;
  const Config node = recipe.root["metrics"];
  if (node.is_null()) {
    out.push_back(registry.create<Kind::metric>(parse_yaml_text("accuracy", "default metrics")));
    return out;
  }
  if (!node.is_list()) node.fail("expected a list of metric plugins");
  for (const auto& m : node.items()) out.push_back(registry.create<Kind::metric>(m));
  return out;
}

/// What the final report adds to the recipe's metrics, when installed.
std::vector<std::shared_ptr<Metric>> report_metrics(const Registry& registry) {
  std::vector<std::shared_ptr<Metric>> out;
  for (const char* name : {"per_class_accuracy", "confusion_matrix"})
    if (registry.find(Kind::metric, name)) out.push_back(registry.create<Kind::metric>(parse_yaml_text(name, "final report")));
  return out;
}

std::shared_ptr<Loss> make_loss(const Recipe& recipe, const Registry& registry) {
  const Config node = recipe.root["loss"];
  return registry.create<Kind::loss>(node.is_null() ? parse_yaml_text("cross_entropy", "default loss") : node);
}

/// Everything of a run that both fit() and evaluate() need.
struct Session {
  Recipe recipe;  // a copy: a resumed run drops its pretrained source
  const Registry& registry;
  Config trainer;
  Devices devices;
  Amp amp;
  bool channels_last = false;
  BuiltModel built;
  DataPlan data;
  std::shared_ptr<Loss> loss;
  std::vector<std::shared_ptr<Metric>> metrics;
  std::unique_ptr<Replicas> replicas;  // DataParallel over devices.all, when more than one

  Session(const Recipe& r, const Registry& reg) : recipe(r), registry(reg) {
    const Config root = recipe.root;
    trainer = root["trainer"].is_null() ? parse_yaml_text("{}", "trainer") : root["trainer"];
    trainer = trainer.validated(trainer_schema(), "trainer");
    devices = resolve_devices(trainer["device"]);
    const int threads = resolve_threads(trainer["threads"]);
    configure_cpu(threads);
    if (!trainer["amp"].is_null()) {
      const std::string a = trainer.get<std::string>("amp");
      if (a != "bf16" && a != "fp16" && a != "none") trainer["amp"].fail("expected bf16, fp16 or none, got '" + a + "'");
      if (a != "none") {
        if (!devices.main.is_cuda()) trainer["amp"].fail("mixed precision needs a CUDA device (trainer.device)");
        amp.on = true;
        amp.dtype = a == "bf16" ? torch::kBFloat16 : torch::kHalf;
        amp.scaling = a == "fp16";
      }
    }
    channels_last = trainer.get<bool>("channels_last");
  }

  torch::nn::Module& model() { return *built.module.ptr(); }

  void build() {
    built = build_model(recipe, registry);
    model().to(devices.main);
    if (channels_last) {
      torch::NoGradGuard no_grad;
      for (auto& p : model().parameters())
        if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
    }
    data = build_data(recipe, registry);
    loss = make_loss(recipe, registry);
    metrics = make_metrics(recipe, registry);
  }

  /// DataParallel replicas of the module as it is now (after freezing or loading weights).
  void make_replicas() {
    if (devices.all.size() > 1) replicas = std::make_unique<Replicas>(built.module, devices.all);
  }

  torch::Tensor to_device(const torch::Tensor& t) const {
    auto x = t.to(devices.main, /*non_blocking=*/true);
    if (channels_last && x.dim() == 4) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    return x;
  }

  torch::Tensor forward(const torch::Tensor& x) {
    if (replicas) return replicas->forward(x, [this](torch::nn::AnyModule& m, const torch::Tensor& in) {
      AutocastScope scope(amp);
      return m.forward<torch::Tensor>(in);
    });
    AutocastScope scope(amp);
    return built.module.forward<torch::Tensor>(x);
  }

  /// One pass over `dataset` in eval mode: mean loss and every metric.
  PassResult evaluate_pass(const std::shared_ptr<Dataset>& dataset, const std::string& split,
                           const std::vector<std::shared_ptr<Metric>>& extra = {}) {
    PassResult r;
    r.split = split;
    torch::NoGradGuard no_grad;
    const bool was_training = model().is_training();
    model().eval();
    Loader loader(dataset, data.eval_transforms, data.eval_options);
    loader.start(0);
    std::vector<std::shared_ptr<Metric>> all = metrics;
    all.insert(all.end(), extra.begin(), extra.end());
    for (auto& m : all) m->reset();
    double loss_sum = 0;
    while (auto batch = loader.next()) {
      const auto x = to_device(batch->inputs), y = to_device(batch->targets);
      const auto out = forward(x).to(torch::kFloat);
      const auto l = loss->forward(out, y);
      loss_sum += l.item<double>() * static_cast<double>(y.size(0));
      r.samples += y.size(0);
      for (auto& m : all) m->update(out, y);
    }
    r.metrics["loss"] = r.samples ? loss_sum / static_cast<double>(r.samples) : 0.0;
    for (auto& m : all) {
      for (const auto& [k, v] : m->compute()) r.metrics[k] = v;
      const auto text = m->report(data.classes);
      if (!text.empty()) r.report += text + (text.back() == '\n' ? "" : "\n");
    }
    model().train(was_training);
    return r;
  }
};

/// Hooks of `hooks:` plus the ones graft adds for its own bookkeeping.
std::vector<std::shared_ptr<Hook>> make_hooks(const Recipe& recipe, const Registry& registry, std::vector<std::string>& names) {
  std::vector<std::shared_ptr<Hook>> hooks;
  const Config node = recipe.root["hooks"];
  if (node.is_null()) return hooks;
  if (!node.is_list()) node.fail("expected a list of hook plugins");
  for (const auto& h : node.items()) {
    hooks.push_back(registry.create<Kind::hook>(h));
    names.push_back(Registry::spec_name(h));
  }
  return hooks;
}

bool data_val_none(const Recipe& recipe) {
  const Config v = recipe.root["data"]["val"];
  return v.is_scalar() && v.scalar() == "none";
}

template <class F> void each(std::vector<std::shared_ptr<Hook>>& hooks, F&& f) {
  for (auto& h : hooks) f(*h);
}

}  // namespace

// ---- fit -------------------------------------------------------------------------------

void configure_cpu(int threads) {
  torch::set_num_threads(threads);
  // OpenBLAS found in the process (Debian's libblas.so.3 alternative): one thread
  if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) {
    using SetThreads = void (*)(int);
    if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(1);
  }
#ifdef __GLIBC__
  // A training step frees and reallocates the same large activation and workspace buffers
  // every time. glibc's defaults hand each one back to the kernel (mmap/munmap, heap trims)
  // and fault its pages in again: on 2 cores that was 60% of the run in system time and
  // halved the throughput (fashion_mnist_cnn: 830 -> 2,060 img/s). Keep them in the heap,
  // all of them: mallopt's mmap threshold stops at 32 MiB, and buffers above it (batch 500
  // of the small CNN in evaluation) doubled an eval's time; no mmap at all (M_MMAP_MAX 0).
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
  mallopt(M_TOP_PAD, 256 * 1024 * 1024);
#endif
}

namespace {
/// The checkpoint strategies of `checkpoint:` (default: save_last and on_signal; `[]`: none).
std::vector<std::shared_ptr<CheckpointStrategy>> make_strategies(const Recipe& recipe, const Registry& registry,
                                                                 std::vector<std::string>& names) {
  std::vector<std::shared_ptr<CheckpointStrategy>> out;
  Config node = recipe.root["checkpoint"];
  if (node.is_null()) node = parse_yaml_text("[save_last, on_signal]", "default checkpoint strategies");
  if (!node.is_list()) node.fail("expected a list of checkpoint strategy plugins");
  for (const auto& c : node.items()) {
    out.push_back(registry.create<Kind::checkpoint>(c));
    names.push_back(Registry::spec_name(c));
  }
  return out;
}

/// The newest run dir of this recipe under runs/ that holds a checkpoint ("" if none).
std::string newest_run_dir(const Recipe& recipe) {
  std::error_code ec;
  std::string best;
  fs::file_time_type best_time{};
  const std::string prefix = recipe_stem(recipe) + "-";
  for (const auto& e : fs::directory_iterator("runs", ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || ckpt::candidates((e.path() / "checkpoints").string()).empty()) continue;
    const auto t = fs::last_write_time(e.path() / "checkpoints", ec);
    if (best.empty() || t > best_time) best = e.path().string(), best_time = t;
  }
  return best;
}

/// Each hook's state under "<position>:<name>", as on_save_checkpoint leaves it.
template <class H>
ckpt::Dict hook_states(TrainContext& ctx, const std::vector<std::shared_ptr<H>>& hooks, const std::vector<std::string>& names) {
  ckpt::Dict all = ckpt::new_dict();
  for (std::size_t k = 0; k < hooks.size(); ++k) {
    ckpt::Dict state = ckpt::new_dict();
    hooks[k]->on_save_checkpoint(ctx, state);
    if (state.size() > 0) all.insert(fmt::format("{}:{}", k, names[k]), state);
  }
  return all;
}

template <class H>
void load_hook_states(TrainContext& ctx, const std::vector<std::shared_ptr<H>>& hooks, const std::vector<std::string>& names,
                      const ckpt::Dict& all) {
  for (std::size_t k = 0; k < hooks.size(); ++k) {
    const std::string key = fmt::format("{}:{}", k, names[k]);
    if (all.contains(key)) hooks[k]->on_load_checkpoint(ctx, all.at(key).toGenericDict());
  }
}

ckpt::Dict as_dict(const std::map<std::string, double>& m) {
  ckpt::Dict d = ckpt::new_dict();
  for (const auto& [k, v] : m) d.insert(k, v);
  return d;
}
}  // namespace

FitResult fit(const Recipe& recipe, const Registry& registry, const TrainOptions& options) {
  const auto started = Clock::now();
  const Plan used = check_recipe(recipe, registry);
  Session s(recipe, registry);
  if (recipe.root["data"].is_null()) recipe.root.fail("a recipe to train needs a data: section");
  if (recipe.root["optimizer"].is_null()) recipe.root.fail("a recipe to train needs an optimizer: section");
  if (!options.resume.empty() && !options.resume_weights_only.empty())
    throw Error::usage("--resume and --resume-weights-only exclude each other: one goes on with a run, the other starts a new one");

  const Config& tr = s.trainer;
  const std::int64_t epochs = tr.get<std::int64_t>("epochs");
  const std::int64_t max_steps = tr.get<std::int64_t>("max_steps");
  const std::int64_t val_every = tr.get<std::int64_t>("val_every");
  const std::int64_t log_every = std::max<std::int64_t>(1, tr.get<std::int64_t>("log_every"));
  const std::int64_t accumulate = tr.get<std::int64_t>("accumulate");
  if (epochs < 1) tr["epochs"].fail("must be >= 1");
  if (max_steps < 0) tr["max_steps"].fail("must be >= 0");
  if (accumulate < 1) tr["accumulate"].fail("must be >= 1");
  const std::optional<double> clip_norm =
      tr["clip_grad_norm"].is_null() ? std::nullopt : std::optional<double>(tr.get<double>("clip_grad_norm"));
  const std::optional<double> clip_value =
      tr["clip_grad_value"].is_null() ? std::nullopt : std::optional<double>(tr.get<double>("clip_grad_value"));
  if (clip_norm && !(*clip_norm > 0)) tr["clip_grad_norm"].fail("must be > 0");
  if (clip_value && !(*clip_value > 0)) tr["clip_grad_value"].fail("must be > 0");
  if (clip_norm && clip_value) tr["clip_grad_value"].fail("set clip_grad_norm or clip_grad_value, not both");
  const bool stop_on_nan = tr.get<bool>("stop_on_nan");

  std::shared_ptr<Scheduler> scheduler;
  bool sched_per_step = false;
  std::int64_t sched_count = 0;
  if (!recipe.root["scheduler"].is_null()) {
    const Config sc = recipe.root["scheduler"];
    scheduler = registry.create<Kind::scheduler>(sc, {"interval"});
    const std::string interval =
        sc.is_map() && sc.has("interval") ? sc["interval"].as<std::string>() : scheduler->default_interval();
    if (interval != "epoch" && interval != "step") sc["interval"].fail("expected epoch or step, got '" + interval + "'");
    sched_per_step = interval == "step";
    const std::string monitor = scheduler->monitor();
    if (monitor.rfind("val/", 0) == 0 && sched_per_step)
      sc.fail("monitors '" + monitor + "', known only after a validation pass: use interval: epoch");
    if (monitor.rfind("val/", 0) == 0 && (tr.get<std::int64_t>("val_every") <= 0 || data_val_none(recipe)))
      sc.fail("monitors '" + monitor + "', but the run does not validate (data.val: none or trainer.val_every: 0)");
  }
  std::vector<std::string> hook_names, strategy_names;
  auto hooks = make_hooks(recipe, registry, hook_names);
  auto strategies = make_strategies(recipe, registry, strategy_names);
  std::vector<std::shared_ptr<Hook>> all_hooks(hooks.begin(), hooks.end());
  all_hooks.insert(all_hooks.end(), strategies.begin(), strategies.end());

  // ---- which checkpoint to resume from: found before anything is written
  FitResult result;
  std::string run_dir = options.run_dir.empty() ? s.trainer.get<std::string>("run_dir") : options.run_dir;
  std::optional<ckpt::Loaded> from;
  if (options.resume == "auto") {
    const std::string dir = run_dir.empty() ? newest_run_dir(recipe) : run_dir;
    if (!dir.empty()) from = ckpt::newest_good((fs::path(dir) / "checkpoints").string());
    if (from) run_dir = dir;
    else spdlog::info("--resume auto: no checkpoint to resume from{}: a new run starts", dir.empty() ? "" : " in " + dir);
  } else if (!options.resume.empty()) {
    if (!fs::exists(options.resume)) throw Error::usage("--resume " + options.resume + ": no such file");
    try {
      from = ckpt::load(options.resume);
    } catch (const Error& e) {
      throw Error::usage(std::string(e.what()));
    }
    const fs::path parent = fs::path(options.resume).parent_path();
    if (run_dir.empty() && parent.filename() == "checkpoints") run_dir = parent.parent_path().string();
  }
  ckpt::Dict saved = ckpt::new_dict();
  std::int64_t start_epoch = 0, start_batch = 0, resume_step = -1;
  if (from) {
    saved = from->dict.at("graft").toGenericDict();
    std::vector<std::string> model_changes;
    const auto diff = ckpt::recipe_diff(saved.at("recipe").toStringRef(), recipe.root.to_yaml());
    for (const auto& line : diff)
      if (ckpt::changes_model(line)) model_changes.push_back(line);
    if (!model_changes.empty())
      throw Error::usage(fmt::format("{}: the recipe's model is not the checkpoint's ({}); to start a new run from its "
                                     "weights, use --resume-weights-only {}",
                                     from->path, fmt::join(model_changes, "; "), from->path));
    for (const auto& line : diff) spdlog::warn("resume: the recipe differs from the checkpoint's: {}", line);
    const auto pos = saved.at("position").toGenericDict();
    start_epoch = pos.at("epoch").toInt();
    start_batch = pos.at("batch").toInt();
    resume_step = from->dict.at("step").toInt();
    result.resumed_from = from->path;
    // the checkpoint holds every weight: the pretrained source is not read again
    s.recipe.root = merge(recipe.root, parse_yaml_text("model: {weights: ~}", "--resume"));
  }
  if (run_dir.empty()) run_dir = default_run_dir(recipe);
  RunOutput out(options.write_run_dir ? run_dir : "", options.progress, resume_step);
  result.run_dir = out.dir();
  out.write_text("recipe.yaml", "# resolved from " + recipe.file + "\n" + recipe.root.to_yaml());
  spdlog::info("run dir {}", out.dir().empty() ? "(none)" : out.dir());

  s.build();
  auto& model = s.model();
  spdlog::info("device {}{}, {} CPU threads{}", s.devices.main.str(),
               s.devices.all.size() > 1 ? fmt::format(" (DataParallel over {} devices)", s.devices.all.size()) : "",
               torch::get_num_threads(), s.amp.on ? (s.amp.scaling ? ", amp fp16" : ", amp bf16") : "");
  if (s.built.weights) spdlog::info("weights: {}: {}", s.built.weights->file, s.built.weights->summary());
  for (const auto& line : s.built.changes) spdlog::info("model: {}", line);
  spdlog::info("data: {}", s.data.description);
  if (!options.resume_weights_only.empty()) {
    const std::string& path = options.resume_weights_only;
    if (!fs::exists(path)) throw Error::usage("--resume-weights-only " + path + ": no such file");
    const LoadReport r = load_weights(model, load_state_dict(path), /*strict=*/false, path);
    if (r.loaded.empty()) throw Error::usage(fmt::format("{}: no weight fits the recipe's model: {}", path, r.summary()));
    spdlog::info("weights from {} (a new run, nothing else of that run): {}", path, r.summary());
  }

  // freezing and the optimizer
  const auto freezers = make_freezers(recipe, registry);
  const ModelInfo info = model_info(model);
  FreezeState frozen = freeze_state(freezers, info, 0, 0);
  apply_freeze(model, frozen);
  s.make_replicas();
  OptimizerPlan plan = plan_optimizer(recipe, registry, model, frozen);
  auto optimizer = make_optimizer(recipe, registry, plan);
  std::vector<GroupInfo> groups;
  for (std::size_t k = 0; k < plan.groups.size(); ++k)
    groups.push_back({plan.groups[k].name, plan.groups[k].lr, get_group_momentum(optimizer->param_groups()[k])});

  Loader loader(s.data.train, s.data.train_transforms, s.data.train_options);
  const std::int64_t batches = loader.batches_per_epoch();
  if (batches == 0) recipe.root["data"].fail("the training split gives no batch (fewer samples than batch_size with drop_last)");
  const std::int64_t steps_per_epoch = (batches + accumulate - 1) / accumulate;
  const std::int64_t planned_steps = max_steps > 0 ? std::min(max_steps, epochs * steps_per_epoch) : epochs * steps_per_epoch;
  const std::int64_t planned_epochs = (planned_steps + steps_per_epoch - 1) / steps_per_epoch;
  if (from && start_batch > batches)
    throw Error::usage(fmt::format("{}: saved at batch {} of an epoch, but an epoch now has {} batches (data or batch_size changed)",
                                   from->path, start_batch, batches));

  // the scheduler
  if (scheduler) {
    ScheduleInfo si;
    si.per_step = sched_per_step;
    si.steps_per_epoch = steps_per_epoch;
    si.epochs = planned_epochs;
    si.total = sched_per_step ? planned_steps : planned_epochs;
    scheduler->setup(si);
  }
  auto apply_schedule = [&] {
    if (!scheduler) return;
    for (std::size_t k = 0; k < groups.size(); ++k) {
      auto& g = optimizer->param_groups()[k];
      set_group_lr(g, scheduler->lr(groups[k].base_lr, sched_count));
      if (groups[k].base_momentum)
        if (auto m = scheduler->momentum(*groups[k].base_momentum, sched_count)) set_group_momentum(g, *m);
    }
  };
  auto advance_schedule = [&](const std::map<std::string, double>& metrics) {
    if (!scheduler) return;
    const std::string monitor = scheduler->monitor();
    if (!monitor.empty()) {
      const auto it = metrics.find(monitor);
      // no fresh value (an epoch without validation): the schedule waits, as Lightning's
      if (it == metrics.end()) return;
      scheduler->observe(it->second);
    }
    ++sched_count;
    apply_schedule();
  };
  apply_schedule();

  // A freezing schedule may unfreeze parameters at an epoch's start: they join their
  // groups, or groups of their own appended to the optimizer (a resumed run replays this
  // up to its epoch, so its optimizer has the same groups in the same order).
  auto unfreeze_at = [&](std::int64_t epoch, std::int64_t step) {
    FreezeState now = freeze_state(freezers, info, epoch, step);
    if (now.frozen == frozen.frozen && now.eval_modules == frozen.eval_modules) return;
    apply_freeze(model, now);
    if (s.replicas) s.replicas->sync_parameters();
    OptimizerPlan next = plan_optimizer(recipe, registry, model, now);
    std::vector<ParamGroup> added;
    auto in_optimizer = [&](const torch::Tensor& p) {
      for (const auto& pg : optimizer->param_groups())
        for (const auto& t : pg.params())
          if (t.is_same(p)) return true;
      return false;
    };
    for (auto& g : next.groups) {
      // the same group: same name and lr (two milestones of one epoch share a name)
      auto it = std::find_if(groups.begin(), groups.end(),
                             [&](const GroupInfo& gi) { return gi.name == g.name && gi.base_lr == g.lr; });
      if (it != groups.end()) {
        auto& pg = optimizer->param_groups()[static_cast<std::size_t>(it - groups.begin())];
        for (const auto& p : g.params)
          if (!in_optimizer(p)) pg.params().push_back(p);
      } else {
        ParamGroup fresh = g;
        fresh.params.clear();
        fresh.names.clear();
        for (std::size_t i = 0; i < g.params.size(); ++i)
          if (!in_optimizer(g.params[i])) {
            fresh.params.push_back(g.params[i]);
            fresh.names.push_back(g.names[i]);
          }
        if (!fresh.params.empty()) added.push_back(fresh);
      }
    }
    if (!added.empty()) {
      auto extra = make_optimizer(recipe, registry, OptimizerPlan{plan.optimizer, added, {}});
      for (std::size_t k = 0; k < added.size(); ++k) {
        optimizer->add_param_group(extra->param_groups()[k]);
        groups.push_back({added[k].name, added[k].lr, get_group_momentum(extra->param_groups()[k])});
      }
      apply_schedule();
    }
    spdlog::info("epoch {}: unfroze {} tensors{}", epoch + 1, frozen.frozen.size() - now.frozen.size(),
                 added.empty() ? "" : fmt::format(" ({} new optimizer groups)", added.size()));
    frozen = std::move(now);
  };

  TrainContext ctx;
  ctx.model = &model;
  ctx.optimizer = optimizer.get();
  ctx.max_epochs = planned_epochs;
  ctx.max_steps = max_steps;
  ctx.batches_per_epoch = batches;
  ctx.run_dir = out.dir();

  // the running sums of the epoch's training loss
  double loss_sum = 0;
  std::int64_t seen = 0;
  double seconds_before = 0;  // training time of the runs this one resumes

  // ---- resume: the state of the run at the checkpoint
  if (from) {
    const std::int64_t last_started = start_batch > 0 ? start_epoch : start_epoch - 1;
    for (std::int64_t e = 1; e <= std::min(last_started, planned_epochs - 1); ++e)
      if (!freezers.empty()) unfreeze_at(e, e * steps_per_epoch);
    StateDict weights;
    for (const auto& e : from->dict.at("model_state_dict").toGenericDict()) weights.insert(e.key().toStringRef(), e.value().toTensor());
    const LoadReport r = load_weights(model, weights, /*strict=*/false, from->path);
    if (!r.clean()) throw Error::usage(fmt::format("{}: does not fit the recipe's model: {}", from->path, r.summary()));
    if (s.replicas) s.replicas->sync_parameters();
    ckpt::load_optimizer_state(*optimizer, ckpt::group_param_names(*optimizer, model),
                               from->dict.at("optimizer_state_dict").toGenericDict(), from->path);
    if (scheduler && from->dict.contains("scheduler")) {
      std::map<std::string, double> state;
      for (const auto& e : from->dict.at("scheduler").toGenericDict()) {
        if (e.key().toStringRef() == "count") sched_count = e.value().toInt();
        else state[e.key().toStringRef()] = e.value().toDouble();
      }
      scheduler->load_state(state);
      apply_schedule();
    }
    const auto amp = saved.at("amp").toGenericDict();
    s.amp.scale = amp.at("scale").toDouble();
    s.amp.good_steps = amp.at("good_steps").toInt();
    ctx.step = resume_step;
    ctx.epoch = start_epoch;
    for (const auto& e : saved.at("metrics").toGenericDict()) ctx.metrics[e.key().toStringRef()] = e.value().toDouble();
    const auto sums = saved.at("train_sums").toGenericDict();
    loss_sum = sums.at("loss_sum").toDouble();
    seen = sums.at("seen").toInt();
    seconds_before = saved.at("seconds").toDouble();
    load_hook_states(ctx, hooks, hook_names, from->dict.at("hooks").toGenericDict());
    load_hook_states(ctx, strategies, strategy_names, saved.at("checkpoint").toGenericDict());
    spdlog::info("resumed from {}: epoch {}, batch {}/{}, step {}", from->path, start_epoch + 1, start_batch, batches, resume_step);
  }

  // ---- checkpoints
  auto make_checkpoint = [&](SavePoint at, std::int64_t epoch_pos, std::int64_t batch_pos) {
    ckpt::Dict c = ckpt::new_dict();
    c.insert("epoch", c10::IValue(epoch_pos));  // epochs completed (seed 001's key)
    c.insert("step", c10::IValue(ctx.step));
    c10::Dict<std::string, torch::Tensor> weights;
    for (const auto& item : state_dict(model)) weights.insert(item.key(), item.value().detach().to(torch::kCPU));
    c.insert("model_state_dict", weights);
    c.insert("optimizer_state_dict", ckpt::optimizer_state(*optimizer, ckpt::group_param_names(*optimizer, model)));
    c.insert("loss", c10::IValue(ctx.metrics.count("train/loss") ? ctx.metrics["train/loss"] : 0.0));
    c.insert("graft_version", c10::IValue(std::string(GRAFT_VERSION)));
    c.insert("hooks", hook_states(ctx, hooks, hook_names));
    if (scheduler) {
      ckpt::Dict sched = ckpt::new_dict();
      sched.insert("count", c10::IValue(sched_count));
      for (const auto& [k, v] : scheduler->state()) sched.insert(k, c10::IValue(v));
      c.insert("scheduler", sched);
    }
    ckpt::Dict g = ckpt::new_dict();
    g.insert("format", c10::IValue(ckpt::format_version));
    g.insert("exact", at != SavePoint::exception);
    g.insert("saved_at", std::string(save_point_name(at)));
    ckpt::Dict pos = ckpt::new_dict();
    pos.insert("epoch", c10::IValue(epoch_pos));
    pos.insert("batch", c10::IValue(batch_pos));
    pos.insert("batches_per_epoch", c10::IValue(batches));
    g.insert("position", pos);
    g.insert("rng", ckpt::rng_state());
    ckpt::Dict amp = ckpt::new_dict();
    amp.insert("scale", s.amp.scale);
    amp.insert("good_steps", c10::IValue(s.amp.good_steps));
    g.insert("amp", amp);
    ckpt::Dict sums = ckpt::new_dict();
    sums.insert("loss_sum", loss_sum);
    sums.insert("seen", c10::IValue(seen));
    g.insert("train_sums", sums);
    g.insert("metrics", as_dict(ctx.metrics));
    g.insert("checkpoint", hook_states(ctx, strategies, strategy_names));
    ckpt::Dict fr = ckpt::new_dict();
    fr.insert("epoch", c10::IValue(ctx.epoch));
    fr.insert("frozen", c10::List<std::string>(std::vector<std::string>(frozen.frozen.begin(), frozen.frozen.end())));
    g.insert("freeze", fr);
    g.insert("recipe", recipe.root.to_yaml());
    g.insert("recipe_file", recipe.file);
    ckpt::Dict versions = ckpt::new_dict();
    versions.insert("graft", std::string(GRAFT_VERSION));
    versions.insert("libtorch", std::string(TORCH_VERSION));
    versions.insert("plugin_abi", c10::IValue(static_cast<std::int64_t>(GRAFT_ABI_VERSION)));
    c10::List<std::string> plugins;
    for (const auto& p : used.plugins) plugins.push_back(fmt::format("{}:{} ({})", kind_name(p.kind), p.name, fs::path(p.library).filename().string()));
    versions.insert("plugins", plugins);
    g.insert("versions", versions);
    g.insert("seconds", seconds_before + seconds_since(started));
    c.insert("graft", g);
    return c;
  };
  auto save_point = [&](SavePoint at, std::int64_t epoch_pos, std::int64_t batch_pos) {
    if (out.dir().empty()) return;
    std::vector<std::string> names;
    for (auto& st : strategies)
      for (const auto& n : st->files_to_save(ctx, at)) {
        if (n.empty() || n[0] == '.' || n.find('/') != std::string::npos || fs::path(n).extension() != ".pth")
          throw Error::usage(fmt::format("a checkpoint strategy asked for the file '{}': expected a plain name ending in .pth", n));
        if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
      }
    if (names.empty()) return;
    const auto t0 = Clock::now();
    const auto paths = out.write_checkpoint(names, make_checkpoint(at, epoch_pos, batch_pos));
    result.checkpoint = paths.front();
    std::error_code ec;
    spdlog::info("saved {} at step {} ({:.1f} MB in {:.2f} s)", fmt::join(names, ", "), ctx.step,
                 static_cast<double>(fs::file_size(paths.front(), ec)) / 1e6, seconds_since(t0));
    const auto existing = out.list_checkpoints();
    for (auto& st : strategies)
      for (const auto& n : st->files_to_remove(ctx, existing, names))
        if (std::find(names.begin(), names.end(), n) == names.end() &&
            std::find(existing.begin(), existing.end(), n) != existing.end())
          out.remove_checkpoint(n);
  };

  const auto params = model.parameters();
  auto first_lr = [&] { return optimizer->param_groups().empty() ? 0.0 : group_lr(optimizer->param_groups()[0]); };

  bool interrupted = false;
  try {
    each(all_hooks, [&](Hook& h) { h.on_fit_start(ctx); });
    if (from) {
      ckpt::set_rng_state(saved.at("rng").toGenericDict());
      // all of the checkpoint is in the run's state now: free its tensors (one buffer)
      saved = ckpt::new_dict();
      from->dict = ckpt::new_dict();
    }
    bool done = false;
    result.epochs = start_epoch;  // a finished run resumed: nothing more to train
    // where the run ends: the next epoch, or within the last one when max_steps or a hook
    // cut it short (a longer run resumed from there goes on mid-epoch)
    std::int64_t end_epoch = start_epoch, end_batch = start_batch;
    for (std::int64_t epoch = start_epoch; epoch < planned_epochs && !done; ++epoch) {
      const bool mid_epoch = from && epoch == start_epoch && start_batch > 0;  // resumed within this epoch
      const std::int64_t first_batch = mid_epoch ? start_batch : 0;
      ctx.epoch = epoch;
      result.epochs = epoch + 1;
      if (epoch > 0 && !freezers.empty() && !mid_epoch) unfreeze_at(epoch, ctx.step);
      model.train();
      apply_freeze(model, frozen);
      for (auto& m : s.metrics) m->reset();
      if (!mid_epoch) {
        // last epoch's validation values are not this epoch's
        for (auto it = ctx.metrics.begin(); it != ctx.metrics.end();)
          it = it->first.rfind("val/", 0) == 0 ? ctx.metrics.erase(it) : std::next(it);
        loss_sum = 0;
        seen = 0;
        each(all_hooks, [&](Hook& h) { h.on_epoch_start(ctx); });
      }
      loader.start(epoch, first_batch);
      const auto epoch_started = Clock::now();
      auto window_started = Clock::now();
      std::int64_t window_samples = 0, epoch_samples = 0;
      clear_grads(*optimizer);
      std::int64_t in_accumulation = 0;
      bool complete = true;
      std::int64_t next_batch = first_batch;
      for (std::int64_t b = first_batch; b < batches; ++b) {
        auto batch = loader.next();
        if (!batch) break;
        ctx.batch = b;
        next_batch = b + 1;
        ctx.inputs = s.to_device(batch->inputs);
        ctx.targets = s.to_device(batch->targets);
        each(all_hooks, [&](Hook& h) { h.on_batch_start(ctx); });
        ctx.output = s.forward(ctx.inputs);
        {
          AutocastScope scope(s.amp);
          ctx.loss = s.loss->forward(ctx.output.to(torch::kFloat), ctx.targets);
        }
        ctx.loss_value = ctx.loss.item<double>();
        if (stop_on_nan && !std::isfinite(ctx.loss_value))
          throw Error::runtime(fmt::format(
              "non-finite loss ({}) at epoch {}, batch {}, after {} optimizer steps: training stopped; nothing of this "
              "step was applied (lower the learning rate, or set trainer.clip_grad_norm)",
              ctx.loss_value, epoch + 1, b + 1, ctx.step));
        each(all_hooks, [&](Hook& h) { h.on_after_forward(ctx); });
        const std::int64_t n = ctx.targets.size(0);
        loss_sum += ctx.loss_value * static_cast<double>(n);
        seen += n;
        window_samples += n;
        epoch_samples += n;
        {
          torch::NoGradGuard no_grad;
          for (auto& m : s.metrics) m->update(ctx.output.detach(), ctx.targets);
        }
        // the last group of an epoch may hold fewer batches: scale by what it really holds
        const std::int64_t group_start = b - in_accumulation;
        const std::int64_t group_size = std::min(accumulate, batches - group_start);
        torch::Tensor to_backward = group_size > 1 ? ctx.loss / static_cast<double>(group_size) : ctx.loss;
        if (s.amp.scaling) to_backward = to_backward * s.amp.scale;
        to_backward.backward();
        if (s.replicas) s.replicas->reduce_gradients();
        ++in_accumulation;
        each(all_hooks, [&](Hook& h) { h.on_after_backward(ctx); });
        if (in_accumulation == group_size) {
          in_accumulation = 0;
          bool skip = false;
          if (s.amp.scaling) {  // unscale; skip the step when a gradient overflowed
            torch::NoGradGuard no_grad;
            bool finite = true;
            for (auto& p : params)
              if (p.grad().defined()) {
                p.mutable_grad().mul_(1.0 / s.amp.scale);
                finite = finite && torch::isfinite(p.grad()).all().item<bool>();
              }
            if (!finite) {
              skip = true;
              s.amp.scale *= 0.5;
              s.amp.good_steps = 0;
            } else if (++s.amp.good_steps == 2000) {
              s.amp.scale *= 2.0;
              s.amp.good_steps = 0;
            }
          }
          if (!skip) {
            if (clip_norm) torch::nn::utils::clip_grad_norm_(params, *clip_norm);
            if (clip_value) torch::nn::utils::clip_grad_value_(params, *clip_value);
            each(all_hooks, [&](Hook& h) { h.on_before_optimizer_step(ctx); });
            optimizer->step();
            if (s.replicas) s.replicas->sync_parameters();
          }
          clear_grads(*optimizer);
          ++ctx.step;
          each(all_hooks, [&](Hook& h) { h.on_after_optimizer_step(ctx); });
          if (sched_per_step) advance_schedule(ctx.metrics);
          if (ctx.step % log_every == 0) {
            const double secs = seconds_since(window_started);
            json rec = {{"epoch", epoch + 1},     {"step", ctx.step},
                        {"loss", ctx.loss_value}, {"lr", first_lr()},
                        {"img_per_s", secs > 0 ? static_cast<double>(window_samples) / secs : 0.0},
                        {"time", seconds_before + seconds_since(started)}};
            out.metrics_line(rec);
            out.log_step(fmt::format("epoch {}/{} step {} loss {:.4f} lr {:.3g} {:.0f} img/s", epoch + 1, planned_epochs,
                                     ctx.step, ctx.loss_value, first_lr(), rec["img_per_s"].get<double>()));
            window_started = Clock::now();
            window_samples = 0;
          }
        }
        ctx.metrics["train/loss"] = loss_sum / static_cast<double>(seen);
        ctx.metrics["lr"] = first_lr();
        each(all_hooks, [&](Hook& h) { h.on_batch_end(ctx); });
        const double elapsed = seconds_since(epoch_started);
        const std::int64_t done_here = b + 1 - first_batch;
        out.progress(epoch + 1, planned_epochs, b + 1, batches, ctx.metrics["train/loss"],
                     static_cast<double>(epoch_samples) / std::max(elapsed, 1e-9),
                     elapsed / static_cast<double>(done_here) * static_cast<double>(batches - b - 1));
        if (in_accumulation == 0) {
          save_point(SavePoint::step, epoch, b + 1);
          if (ctx.exit_code != 0) {
            interrupted = true;
            break;
          }
        }
        if (max_steps > 0 && ctx.step >= max_steps && in_accumulation == 0) {
          result.stop_reason = "max_steps";
          done = true;
          complete = b + 1 == batches;
          break;
        }
        if (ctx.stop_requested) {
          result.stop_reason = ctx.stop_reason.empty() ? "a hook asked to stop" : ctx.stop_reason;
          done = true;
          complete = b + 1 == batches;
          break;
        }
      }
      out.end_progress();
      if (interrupted) break;
      end_epoch = complete ? epoch + 1 : epoch;
      end_batch = complete ? 0 : next_batch;
      for (auto& m : s.metrics)
        for (const auto& [k, v] : m->compute()) ctx.metrics["train/" + k] = v;
      json rec = {{"epoch", epoch + 1}, {"step", ctx.step}, {"time", seconds_before + seconds_since(started)}, {"lr", first_lr()},
                  {"epoch_seconds", seconds_since(epoch_started)}};
      if (s.data.val && val_every > 0 && ((epoch + 1) % val_every == 0 || epoch + 1 == planned_epochs || done)) {
        ctx.inputs = ctx.targets = ctx.output = ctx.loss = torch::Tensor();
        each(all_hooks, [&](Hook& h) { h.on_validation_start(ctx); });
        const PassResult v = s.evaluate_pass(s.data.val, "val");
        apply_freeze(model, frozen);
        for (const auto& [k, val] : v.metrics) ctx.metrics["val/" + k] = val;
        each(all_hooks, [&](Hook& h) { h.on_validation_end(ctx); });
      }
      for (const auto& [k, v] : ctx.metrics) rec[k] = v;
      out.metrics_line(rec);
      std::string line = fmt::format("epoch {}/{}: train loss {:.4f}", epoch + 1, planned_epochs, ctx.metrics["train/loss"]);
      if (ctx.metrics.count("train/top1")) line += fmt::format(" top1 {:.2f}%", 100 * ctx.metrics["train/top1"]);
      if (ctx.metrics.count("val/loss")) line += fmt::format(", val loss {:.4f}", ctx.metrics["val/loss"]);
      if (ctx.metrics.count("val/top1")) line += fmt::format(" top1 {:.2f}%", 100 * ctx.metrics["val/top1"]);
      line += fmt::format(" ({})", fmt_duration(seconds_since(epoch_started)));
      spdlog::info("{}", line);
      each(all_hooks, [&](Hook& h) { h.on_epoch_end(ctx); });
      if (!sched_per_step) advance_schedule(ctx.metrics);
      if (ctx.stop_requested && !done) {
        result.stop_reason = ctx.stop_reason.empty() ? "a hook asked to stop" : ctx.stop_reason;
        done = true;
      }
      if (complete) {
        save_point(SavePoint::epoch, epoch + 1, 0);
        if (ctx.exit_code != 0) {
          interrupted = true;
          break;
        }
      }
    }
    result.steps = ctx.step;
    result.metrics = ctx.metrics;
    if (interrupted) {
      result.stop_reason = ctx.stop_reason;
      result.exit_code = ctx.exit_code;
      result.seconds = seconds_before + seconds_since(started);
      spdlog::warn("{} at epoch {}, step {}: saved {}; go on with `graft train {} --resume auto{}` (exit code {})",
                   ctx.stop_reason, ctx.epoch + 1, ctx.step, result.checkpoint.empty() ? "nothing" : result.checkpoint,
                   recipe.file, out.dir().empty() ? "" : " --run-dir " + out.dir(), ctx.exit_code);
      return result;
    }
    if (result.stop_reason.empty()) result.stop_reason = max_steps > 0 && ctx.step >= max_steps ? "max_steps" : "epochs";
    save_point(SavePoint::end, end_epoch, end_batch);

    if (tr.get<bool>("test") && s.data.test) {
      result.test = s.evaluate_pass(s.data.test, "test", report_metrics(registry));
      for (const auto& [k, v] : result.test->metrics) result.metrics["test/" + k] = v;
    }
    each(all_hooks, [&](Hook& h) { h.on_fit_end(ctx); });
  } catch (const std::exception& e) {
    out.end_progress();
    for (auto& h : all_hooks) {
      try {
        h->on_exception(ctx, e);
      } catch (const std::exception& again) {
        spdlog::error("a hook failed while handling the error: {}", again.what());
      }
    }
    try {
      save_point(SavePoint::exception, ctx.epoch, ctx.batch);
    } catch (const std::exception& again) {
      spdlog::error("no checkpoint of the failing run: {}", again.what());
    }
    throw;
  }
  result.seconds = seconds_before + seconds_since(started);
  out.final_report(recipe.file, result);
  return result;
}

// ---- evaluate --------------------------------------------------------------------------

PassResult evaluate(const Recipe& recipe, const Registry& registry, const std::string& checkpoint, const std::string& split) {
  check_recipe(recipe, registry);
  if (recipe.root["data"].is_null()) recipe.root.fail("a recipe to evaluate needs a data: section");
  // The checkpoint holds every weight: the recipe's pretrained source is not needed.
  Recipe bare = recipe;
  bare.root = merge(recipe.root, parse_yaml_text("model: {weights: ~}", "graft eval"));
  Session s(bare, registry);
  s.build();
  // the same matching as pretrained weights (legacy key forms, BatchNorm counters); any
  // key left over means the checkpoint belongs to another model
  const LoadReport matched = load_weights(s.model(), load_state_dict(checkpoint), /*strict=*/false, checkpoint);
  if (!matched.clean()) throw Error::usage(fmt::format("{}: does not fit the recipe's model: {}", checkpoint, matched.summary()));
  s.make_replicas();
  std::shared_ptr<Dataset> data = s.data.test;
  std::string name = "test";
  if (!split.empty() && split != "test") {
    if (split == "val") data = s.data.val, name = "val";
    else if (split == "train") data = s.data.train, name = "train";
    else throw Error::usage("--split: expected train, val or test, got '" + split + "'");
  }
  if (!data) throw Error::usage("the recipe has no " + name + " split to evaluate");
  return s.evaluate_pass(data, name, report_metrics(registry));
}

}  // namespace graft
