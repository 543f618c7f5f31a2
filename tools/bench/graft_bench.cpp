// graft-bench: the graft side of the measurements that `graft train` cannot make by
// itself (tools/bench.sh runs it; see tools/bench/bench.py). Each command prints one JSON
// object on stdout.
//
//   graft-bench train RECIPE [--set K=V]... --feed loader|preloaded --warmup W --steps M
//       the trainer's step (forward, loss value, top-1/top-5 counts, backward, optimizer
//       step, zero_grad) on the recipe's model and optimizer, fed either by the recipe's
//       loader (transforms, workers) or by preloaded tensors (every training image through
//       the eval transforms once; a batch is a gather of a shuffled order, as in Python)
//   graft-bench loader RECIPE [--set K=V]... --batches M
//       the recipe's training loader alone: batches made, nothing trained
//   graft-bench ckpt --backbone resnet50 --dir D --repeats K
//       save_state_dict / load_state_dict of the backbone's state dict, and the CRC-32
//       check that the load does, alone
//   graft-bench infer --model cnn|resnet18 --batch N --warmup W --iters M --threads T
//       evaluation throughput of the model eager (no_grad, eval mode) and as graft eval and
//       predict run it (traced, frozen, optimized for inference); the small CNN at 1x28x28,
//       torchvision's ResNet-18 at 3x224x224, random inputs
//   graft-bench plugins
//       Registry::scan of the built-in plugin directory (and GRAFT_PLUGIN_PATH)
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "graft/error.h"
#include "graft/host/data_plan.h"
#include "io/zip_index.h"  // graft_core's CRC-32, for the check's own row
#include "graft/metrics.h"
#include "graft/model.h"
#include "graft/host/build.h"
#include "graft/host/check.h"
#include "graft/host/optimizer_plan.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "graft/host/serialize.h"
#include "graft/host/trainer.h"
#include "graft/host/runtime.h"
#include "graft/host/script.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// CPU time of the whole process (every thread), user and system, in seconds.
std::pair<double, double> cpu_times() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec); };
  return {s(u.ru_utime), s(u.ru_stime)};
}

struct Args {
  std::string command;
  std::vector<std::string> positional;
  std::vector<std::string> sets;
  std::map<std::string, std::string> options;

  std::string get(const std::string& key, const std::string& fallback) const {
    const auto it = options.find(key);
    return it == options.end() ? fallback : it->second;
  }
  std::int64_t num(const std::string& key, std::int64_t fallback) const {
    const auto it = options.find(key);
    return it == options.end() ? fallback : std::stoll(it->second);
  }
};

Args parse(int argc, char** argv) {
  Args a;
  if (argc < 2) throw graft::Error::usage("usage: graft-bench train|loader|ckpt|plugins ... (see tools/bench/graft_bench.cpp)");
  a.command = argv[1];
  for (int k = 2; k < argc; ++k) {
    const std::string s = argv[k];
    if (s.rfind("--", 0) == 0) {
      if (k + 1 >= argc) throw graft::Error::usage(s + " needs a value");
      if (s == "--set") a.sets.push_back(argv[++k]);
      else a.options[s.substr(2)] = argv[++k];
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

/// A recipe with the registry that resolves it, as `graft train` builds them.
struct Loaded {
  graft::Recipe recipe;
  graft::Registry registry;
  explicit Loaded(const Args& a) {
    if (a.positional.size() != 1) throw graft::Error::usage(a.command + ": expected one RECIPE");
    recipe = graft::load_recipe(a.positional[0], a.sets);
    registry.scan(graft::Registry::default_search_path());
    registry.scan(recipe.plugin_paths, graft::Registry::Source::recipe);
    graft::check_recipe(recipe, registry);
    // the CPU settings (threads, OpenBLAS, allocator) `graft train` applies
    graft::configure_cpu(graft::resolve_threads(recipe.root["trainer"]["threads"]));
  }
};

graft::Config yaml(const std::string& text) { return graft::parse_yaml_text(text, "graft-bench"); }

json cmd_train(const Args& a) {
  Loaded l(a);
  const std::string feed = a.get("feed", "loader");
  if (feed != "loader" && feed != "preloaded") throw graft::Error::usage("--feed: loader or preloaded");
  const auto warmup = a.num("warmup", 10), steps = a.num("steps", 100);

  torch::manual_seed(0);
  graft::BuiltModel built = graft::build_model(l.recipe, l.registry);
  auto& model = *built.module.ptr();
  graft::DataPlan data = graft::build_data(l.recipe, l.registry);
  const graft::Config loss_spec = l.recipe.root["loss"];
  auto loss = l.registry.create<graft::Kind::loss>(loss_spec.is_null() ? yaml("cross_entropy") : loss_spec);
  auto accuracy = l.registry.create<graft::Kind::metric>(yaml("accuracy"));
  const auto freezers = graft::make_freezers(l.recipe, l.registry);
  const auto frozen = graft::freeze_state(freezers, graft::model_info(model), 0, 0);
  model.train();
  graft::apply_freeze(model, frozen);
  auto optimizer = graft::make_optimizer(l.recipe, l.registry, graft::plan_optimizer(l.recipe, l.registry, model, frozen));
  const auto batch = data.train_options.batch_size;

  // the feed
  std::unique_ptr<graft::Loader> loader;
  torch::Tensor all_x, all_y, order;
  std::int64_t cursor = 0;
  if (feed == "loader") {
    loader = std::make_unique<graft::Loader>(data.train, data.train_transforms, data.train_options);
    loader->start(0);
  } else {
    const auto n = data.train->size();
    std::vector<torch::Tensor> xs;
    std::vector<std::int64_t> ys;
    xs.reserve(static_cast<std::size_t>(n));
    graft::Rng rng(0);
    for (std::int64_t i = 0; i < n; ++i) {
      graft::Sample s = data.train->get(i);
      torch::Tensor x = s.input;
      for (const auto& t : data.eval_transforms) x = t->apply(x, rng);
      xs.push_back(x);
      ys.push_back(s.target);
    }
    all_x = torch::stack(xs);
    all_y = torch::tensor(ys, torch::kInt64);
    order = torch::randperm(n, torch::kInt64);
  }
  auto next = [&]() -> std::pair<torch::Tensor, torch::Tensor> {
    if (loader) {
      auto b = loader->next();
      if (!b) {  // a new epoch
        loader->start(1);
        b = loader->next();
      }
      return {b->inputs, b->targets};
    }
    if (cursor + batch > order.size(0)) {
      order = torch::randperm(order.size(0), torch::kInt64);
      cursor = 0;
    }
    const auto idx = order.narrow(0, cursor, batch);
    cursor += batch;
    return {all_x.index_select(0, idx), all_y.index_select(0, idx)};
  };

  Clock::time_point started;
  std::pair<double, double> cpu0;
  std::int64_t samples = 0;
  double loss_sum = 0;
  for (std::int64_t k = 0; k < warmup + steps; ++k) {
    if (k == warmup) started = Clock::now(), samples = 0, cpu0 = cpu_times();
    auto [x, y] = next();
    auto out = built.module.forward<torch::Tensor>(x);
    auto l_ = loss->forward(out, y);
    loss_sum += l_.item<double>();
    {
      torch::NoGradGuard no_grad;
      accuracy->update(out.detach(), y);
    }
    l_.backward();
    optimizer->step();
    optimizer->zero_grad();
    samples += y.size(0);
  }
  const double seconds = since(started);
  const auto cpu1 = cpu_times();
  return {{"img_per_s", static_cast<double>(samples) / seconds}, {"seconds", seconds}, {"steps", steps},
          {"batch", batch},  {"feed", feed},  {"threads", torch::get_num_threads()}, {"loss_sum", loss_sum},
          {"user_s", cpu1.first - cpu0.first}, {"sys_s", cpu1.second - cpu0.second}};
}

json cmd_loader(const Args& a) {
  Loaded l(a);
  const auto batches = a.num("batches", 100);
  graft::DataPlan data = graft::build_data(l.recipe, l.registry);
  graft::Loader loader(data.train, data.train_transforms, data.train_options);
  loader.start(0);
  if (!loader.next()) throw graft::Error::runtime("the loader gave no batch");  // the workers are up
  std::int64_t samples = 0, made = 0;
  const auto started = Clock::now();
  for (std::int64_t epoch = 1; made < batches;) {
    auto b = loader.next();
    if (!b) {
      loader.start(epoch++);
      continue;
    }
    samples += b->inputs.size(0);
    ++made;
  }
  const double seconds = since(started);
  return {{"img_per_s", static_cast<double>(samples) / seconds}, {"seconds", seconds}, {"batches", made},
          {"workers", data.train_options.workers}};
}

json cmd_ckpt(const Args& a) {
  graft::Registry registry;
  registry.scan(graft::Registry::default_search_path());
  const std::string backbone = a.get("backbone", "resnet50");
  const fs::path dir = a.get("dir", fs::temp_directory_path().string());
  const auto repeats = a.num("repeats", 3);
  graft::Recipe recipe;
  recipe.file = "graft-bench";
  recipe.root = yaml("model: {backbone: " + backbone + "}");
  torch::manual_seed(0);
  const graft::BuiltModel built = graft::build_model(recipe, registry);
  const graft::StateDict state = graft::state_dict(*built.module.ptr());
  const std::string path = (dir / ("graft-" + backbone + ".pth")).string();
  json save = json::array(), load = json::array();
  std::vector<char> image;
  for (std::int64_t k = 0; k < repeats; ++k) {
    auto t = Clock::now();
    graft::save_state_dict(state, path);
    save.push_back(since(t));
    // The save wrote past the page cache (O_DIRECT): read the file once, so that the load
    // finds it in the page cache as torch.load finds torch.save's file.
    image.assign(fs::file_size(path), 0);
    std::ifstream(path, std::ios::binary).read(image.data(), static_cast<std::streamsize>(image.size()));
    t = Clock::now();
    const graft::StateDict back = graft::load_state_dict(path);
    load.push_back(since(t));
    if (back.size() != state.size()) throw graft::Error::runtime("the state dict read back differs");
  }
  // The load's CRC-32 check alone: the same bytes (the whole file, in memory), the same
  // threads as the load above.
  json crc = json::array();
  for (std::int64_t k = 0; k < repeats; ++k) {
    const auto t = Clock::now();
    const auto value = graft::zip::crc32(image.data(), image.size(), at::get_num_threads());
    crc.push_back(since(t));
    if (value == 0 && image.empty()) throw graft::Error::runtime("nothing to check");
  }
  json out = {{"bytes", fs::file_size(path)}, {"save_s", save}, {"load_s", load}, {"crc_s", crc}, {"tensors", state.size()}};
  return out;
}

json cmd_infer(const Args& a) {
  graft::configure_cpu(static_cast<int>(a.num("threads", 2)));
  graft::Registry registry;
  registry.scan(graft::Registry::default_search_path());
  const bool cnn = a.get("model", "cnn") == "cnn";
  const std::vector<std::int64_t> sample = cnn ? std::vector<std::int64_t>{1, 28, 28} : std::vector<std::int64_t>{3, 224, 224};
  graft::Recipe recipe;
  recipe.file = "graft-bench";
  recipe.root = yaml(cnn ? "model: {backbone: {name: simple_cnn, in_channels: 1, num_classes: 10, dropout: 0.3}}"
                         : "model: {backbone: resnet18}");
  torch::manual_seed(0);
  graft::BuiltModel built = graft::build_model(recipe, registry);
  built.module.ptr()->eval();
  const auto batch = a.num("batch", 500), warmup = a.num("warmup", 2), iters = a.num("iters", 10);
  std::vector<std::int64_t> shape{batch};
  shape.insert(shape.end(), sample.begin(), sample.end());
  const auto x = torch::randn(shape);
  auto measure = [&](const std::function<torch::Tensor(const torch::Tensor&)>& f) {
    torch::NoGradGuard no_grad;
    for (std::int64_t k = 0; k < warmup; ++k) f(x);
    const auto t = Clock::now();
    for (std::int64_t k = 0; k < iters; ++k) f(x);
    return static_cast<double>(batch * iters) / since(t);
  };
  const double eager = measure([&](const torch::Tensor& in) { return built.module.forward(in); });
  auto script = graft::ScriptModel::trace(built.module, sample);
  script.optimize();
  const double optimized = measure([&](const torch::Tensor& in) { return script.forward(in); });
  return {{"eager_img_per_s", eager}, {"optimized_img_per_s", optimized}};
}

json cmd_plugins(const Args&) {
  const auto t = Clock::now();
  graft::Registry registry;
  registry.scan(graft::Registry::default_search_path());
  const double seconds = since(t);
  std::set<std::string> libraries;
  for (const auto* p : registry.list()) libraries.insert(p->library);
  return {{"seconds", seconds}, {"libraries", libraries.size()}, {"plugins", registry.list().size()},
          {"refused", registry.refusals().size()}};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    json out;
    if (a.command == "train") out = cmd_train(a);
    else if (a.command == "loader") out = cmd_loader(a);
    else if (a.command == "ckpt") out = cmd_ckpt(a);
    else if (a.command == "plugins") out = cmd_plugins(a);
    else if (a.command == "infer") out = cmd_infer(a);
    else throw graft::Error::usage("unknown command '" + a.command + "': train, loader, ckpt, infer or plugins");
    std::cout << out.dump() << std::endl;
    return 0;
  } catch (const graft::Error& e) {
    std::cerr << "graft-bench: error: " << e.what() << "\n";
    return e.kind() == graft::Error::Kind::usage ? 2 : 1;
  } catch (const std::exception& e) {
    std::cerr << "graft-bench: error: " << e.what() << "\n";
    return 1;
  }
}
