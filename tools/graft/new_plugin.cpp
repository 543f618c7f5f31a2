// graft new-plugin KIND NAME [DIR]: a ready-to-build out-of-tree plugin project. The
// project builds against an installed graft (find_package(graft) + graft_add_plugin, which
// brings a precompiled LibTorch header), and holds one source with the plugin's
// registration line and its interface stubbed, a Boost.Test that loads the built library,
// a recipe that uses the plugin on synthetic data, and a README.
#include <fmt/format.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "commands.h"
#include "graft/error.h"
#include "graft/plugin.h"

namespace fs = std::filesystem;

namespace graft::cli {

namespace {

// What differs between kinds: the source (after the common includes), the recipe lines
// that use the plugin, and the spec the test builds it from. @NAME@ is the plugin's name,
// @CLASS@ its CamelCase form.
struct Template {
  const char* includes;
  const char* source;
  const char* recipe;     ///< recipe keys replacing the base recipe's (YAML, top level)
  const char* test_spec;  ///< what the test creates
};

const std::map<Kind, Template>& templates() {
  static const std::map<Kind, Template> all = {
      {Kind::backbone,
       {"#include <graft/model.h>\n",
        R"~(// A whole network. Build it as graft::Stages of named stages (and graft::Block for a leaf
// with its own forward): surgery, `graft inspect --summary`, feature taps and
// torchvision-style state-dict keys (features.0.weight, fc.weight) then work on it.
graft::Stages make_@NAME@(const graft::Config& c) {
  namespace nn = torch::nn;
  const auto width = c.get<std::int64_t>("width");
  graft::Stages features;
  features->append("0", nn::AnyModule(nn::Conv2d(nn::Conv2dOptions(c.get<std::int64_t>("in_channels"), width, 3).padding(1))));
  features->append("1", nn::AnyModule(nn::ReLU()));
  features->append("2", nn::AnyModule(nn::AdaptiveAvgPool2d(1)));
  graft::Stages net;
  net->append("features", nn::AnyModule(features));
  net->append("flatten", nn::AnyModule(nn::Flatten()));
  net->append("fc", nn::AnyModule(nn::Linear(width, c.get<std::int64_t>("num_classes"))));
  return net;
}

}  // namespace

GRAFT_PLUGIN(backbone, "@NAME@", make_@NAME@, "@NAME@: a conv, global pooling and a linear classifier",
             graft::KeySpec("in_channels", 1, "input channels").min(1),
             graft::KeySpec("width", 16, "channels of the conv").min(1),
             graft::KeySpec("num_classes", 10, "output classes").min(1));
)~",
        "model:\n  backbone: {name: @NAME@, width: 16}\n  input_shape: [1, 28, 28]\n", "name: @NAME@"}},
      {Kind::module,
       {"#include <graft/model.h>\n",
        R"~(// A layer or block that surgery puts into a model (replace, insert_after, append_to, ...).
// A graft::Block holds named children and runs them in its own forward; `in_features`
// left at 0 is filled by graft with the size of what flows in where the recipe puts it.
struct @CLASS@Impl : graft::Block<@CLASS@Impl> {
  explicit @CLASS@Impl(std::int64_t features) { add("fc", torch::nn::Linear(features, features)); }
  torch::Tensor forward(torch::Tensor x) { return x + torch::relu(call("fc", x)); }
};
TORCH_MODULE(@CLASS@);

torch::nn::AnyModule make_@NAME@(const graft::Config& c) {
  const auto features = c.get<std::int64_t>("in_features");
  if (features == 0) c["in_features"].fail("must be given here (0: inferred where surgery places the module)");
  return torch::nn::AnyModule(@CLASS@(features));
}

}  // namespace

GRAFT_PLUGIN(module, "@NAME@", make_@NAME@, "@NAME@: x + relu(fc(x)), a residual linear block",
             graft::KeySpec("in_features", 0, "inputs (0: inferred from the model)").min(0));
)~",
        "model:\n  backbone: {name: simple_cnn, width: 8, hidden: 32}\n  surgery:\n"
        "    - {insert_after: flatten, name: @NAME@, with: @NAME@}\n",
        "{name: @NAME@, in_features: 8}"}},
      {Kind::initializer,
       {"#include <graft/init.h>\n",
        R"~(// Fills a tensor in place (graft calls it under NoGradGuard). Draw random numbers only
// from torch's generator: the recipe's seed then makes runs repeatable.
graft::InitFn make_@NAME@(const graft::Config& c) {
  const double std = c.get<double>("std");
  return [std](torch::Tensor& t) { torch::nn::init::normal_(t, 0.0, std); };
}

}  // namespace

GRAFT_PLUGIN(initializer, "@NAME@", make_@NAME@, "@NAME@: N(0, std^2)",
             graft::KeySpec("std", 0.01, "standard deviation").greater_than(0));
)~",
        "model:\n  backbone: {name: simple_cnn, width: 8, hidden: 32}\n  init:\n"
        "    - {modules: Linear, weight: {name: @NAME@, std: 0.02}}\n",
        "name: @NAME@"}},
      {Kind::freezer,
       {"#include <graft/freeze.h>\n",
        R"~(// What is frozen, as a pure function of (epoch, step): a resumed run asks again and gets
// the same answer, so the optimizer's groups line up with the checkpoint's.
class @CLASS@ : public graft::Freezer {
 public:
  explicit @CLASS@(const graft::Config& c) : stages_(c.get<std::int64_t>("stages")) {}
  void apply(const graft::ModelInfo& model, std::int64_t epoch, std::int64_t step,
             graft::FreezeState& state) const override {
    (void)epoch, (void)step;
    for (std::int64_t k = 0; k < stages_ && k < static_cast<std::int64_t>(model.stages.size()); ++k)
      for (const auto& p : model.parameters)
        if (p.rfind(model.stages[k] + ".", 0) == 0) state.frozen.insert(p);
  }

 private:
  std::int64_t stages_;
};

std::shared_ptr<graft::Freezer> make_@NAME@(const graft::Config& c) { return std::make_shared<@CLASS@>(c); }

}  // namespace

GRAFT_PLUGIN(freezer, "@NAME@", make_@NAME@, "@NAME@: freezes the first top-level stages with parameters",
             graft::KeySpec("stages", 1, "how many").min(0));
)~",
        "model:\n  backbone: {name: simple_cnn, width: 8, hidden: 32}\n  freeze: [@NAME@]\n", "name: @NAME@"}},
      {Kind::checkpoint,
       {"#include <graft/checkpoint.h>\n",
        R"~(// Says when the run is saved and under which names; the trainer writes the files
// (atomically) and resumes from them. It is a graft::Hook too: it sees every stage.
class @CLASS@ : public graft::CheckpointStrategy {
 public:
  explicit @CLASS@(const graft::Config& c) : every_(c.get<std::int64_t>("every")) {}
  std::vector<std::string> files_to_save(graft::TrainContext& ctx, graft::SavePoint at) override {
    if (at == graft::SavePoint::epoch && (ctx.epoch + 1) % every_ == 0)
      return {"@NAME@-epoch" + std::to_string(ctx.epoch + 1) + ".pth"};
    return {};
  }

 private:
  std::int64_t every_;
};

std::shared_ptr<graft::CheckpointStrategy> make_@NAME@(const graft::Config& c) { return std::make_shared<@CLASS@>(c); }

}  // namespace

GRAFT_PLUGIN(checkpoint, "@NAME@", make_@NAME@, "@NAME@: a checkpoint every N epochs",
             graft::KeySpec("every", 1, "epochs between checkpoints").min(1));
)~",
        "checkpoint: [save_last, @NAME@]\n", "name: @NAME@"}},
      {Kind::hook,
       {"#include <graft/hooks.h>\n#include <graft/log.h>\n",
        R"~(// Called at every stage of the run (graft/hooks.h lists them in order); override the
// ones you need. What an exact resume needs goes into checkpoints through save_state() /
// load_state() (graft/state.h).
class @CLASS@ : public graft::Hook {
 public:
  explicit @CLASS@(const graft::Config& c) : every_(c.get<std::int64_t>("every")) {}
  void on_batch_end(graft::TrainContext& ctx) override {
    if (ctx.step % every_ == 0) graft::log::info("@NAME@: step {} loss {:.4f}", ctx.step, ctx.loss_value);
  }

 private:
  std::int64_t every_;
};

std::shared_ptr<graft::Hook> make_@NAME@(const graft::Config& c) { return std::make_shared<@CLASS@>(c); }

}  // namespace

GRAFT_PLUGIN(hook, "@NAME@", make_@NAME@, "@NAME@: logs the loss every N steps",
             graft::KeySpec("every", 5, "optimizer steps between lines").min(1));
)~",
        "hooks: [@NAME@]\n", "name: @NAME@"}},
      {Kind::dataset,
       {"#include <graft/data.h>\n#include <graft/error.h>\n",
        R"~(// A split: labelled uint8 images (C, H, W). get() runs on several loader threads at
// once: keep it read-only.
class @CLASS@Split : public graft::Dataset {
 public:
  @CLASS@Split(std::int64_t size, std::int64_t classes) : size_(size), classes_(classes) {}
  std::int64_t size() const override { return size_; }
  graft::Sample get(std::int64_t i) const override {
    const auto label = i % classes_;  // a gray level per class, and a bright pixel that moves
    auto image = torch::full({1, 28, 28}, 20 * label, torch::kUInt8);
    image[0][i % 28][(i / 28) % 28] = 255;
    return {image, label};
  }
  std::vector<std::int64_t> targets() const override {
    std::vector<std::int64_t> t(static_cast<std::size_t>(size_));
    for (std::int64_t i = 0; i < size_; ++i) t[static_cast<std::size_t>(i)] = i % classes_;
    return t;
  }

 private:
  std::int64_t size_, classes_;
};

// The dataset: its splits, opened one at a time. A missing file is a graft::Error::usage
// naming it.
class @CLASS@ : public graft::DataSource {
 public:
  explicit @CLASS@(const graft::Config& c) : size_(c.get<std::int64_t>("size")), classes_(c.get<std::int64_t>("num_classes")) {}
  std::vector<std::string> splits() const override { return {"train", "test"}; }
  std::shared_ptr<graft::Dataset> open(const std::string& split) const override {
    if (split == "train") return std::make_shared<@CLASS@Split>(size_, classes_);
    if (split == "test") return std::make_shared<@CLASS@Split>(size_ / 4, classes_);
    throw graft::Error::usage("@NAME@ has no split '" + split + "'");
  }

 private:
  std::int64_t size_, classes_;
};

std::shared_ptr<graft::DataSource> make_@NAME@(const graft::Config& c) { return std::make_shared<@CLASS@>(c); }

}  // namespace

GRAFT_PLUGIN(dataset, "@NAME@", make_@NAME@, "@NAME@: 1x28x28 images, a gray level per class",
             graft::KeySpec("size", 256, "samples in the train split (the test split has a quarter)").min(1),
             graft::KeySpec("num_classes", 10, "classes").min(1));
)~",
        "data:\n  dataset: @NAME@\n  val: none\n  batch_size: 32\n  workers: 0\n", "name: @NAME@"}},
      {Kind::transform,
       {"#include <graft/data.h>\n",
        R"~(// One sample's image (C, H, W) in, image out. Randomness only from `rng` (seeded per
// sample, epoch and recipe seed), and const: it runs on several threads at once.
class @CLASS@ : public graft::Transform {
 public:
  explicit @CLASS@(const graft::Config& c) : p_(c.get<double>("p")) {}
  torch::Tensor apply(const torch::Tensor& image, graft::Rng& rng) const override {
    return rng.bernoulli(p_) ? image.flip({-2}) : image;
  }
  bool random() const override { return true; }  // left out of the evaluation transforms

 private:
  double p_;
};

std::shared_ptr<graft::Transform> make_@NAME@(const graft::Config& c) { return std::make_shared<@CLASS@>(c); }

}  // namespace

GRAFT_PLUGIN(transform, "@NAME@", make_@NAME@, "@NAME@: a random vertical flip",
             graft::KeySpec("p", 0.5, "probability").min(0).max(1));
)~",
        "data:\n  dataset: {name: synthetic, train_size: 256, test_size: 64}\n  val: none\n  batch_size: 32\n"
        "  workers: 0\n  transforms: [@NAME@, to_tensor]\n",
        "name: @NAME@"}},
      {Kind::optimizer,
       {"#include <graft/optim.h>\n",
        R"~(// An optimizer over the recipe's parameter groups: plain SGD with decoupled weight decay.
// Per-parameter state (momentum buffers, ...) goes through param_state / load_param_state,
// under Python's names, so that checkpoints resume exactly.
class @CLASS@ : public graft::Optimizer {
 public:
  explicit @CLASS@(const std::vector<graft::ParamGroup>& groups) : groups_(groups) {}
  void step() override {
    torch::NoGradGuard no_grad;
    for (auto& g : groups_)
      for (auto& p : g.params) {
        if (!p.grad().defined()) continue;
        if (g.weight_decay != 0) p.mul_(1 - g.lr * g.weight_decay);
        p.add_(p.grad(), -g.lr);
      }
  }
  std::size_t group_count() const override { return groups_.size(); }
  const std::vector<torch::Tensor>& params(std::size_t g) const override { return groups_.at(g).params; }
  void add_group(const graft::ParamGroup& group) override { groups_.push_back(group); }
  void add_params(std::size_t g, const std::vector<torch::Tensor>& params) override {
    groups_.at(g).params.insert(groups_.at(g).params.end(), params.begin(), params.end());
  }
  double lr(std::size_t g) const override { return groups_.at(g).lr; }
  void set_lr(std::size_t g, double lr) override { groups_.at(g).lr = lr; }
  graft::State group_options(std::size_t g) const override {
    graft::State s;
    s.set("lr", groups_.at(g).lr);
    s.set("weight_decay", groups_.at(g).weight_decay);
    return s;
  }
  graft::State param_state(const torch::Tensor&) const override { return {}; }
  void load_param_state(const torch::Tensor&, const graft::State&) override {}

 private:
  std::vector<graft::ParamGroup> groups_;
};

graft::OptimizerFactory make_@NAME@(const graft::Config&) {
  return [](const std::vector<graft::ParamGroup>& groups) { return std::make_unique<@CLASS@>(groups); };
}

}  // namespace

GRAFT_PLUGIN(optimizer, "@NAME@", make_@NAME@, "@NAME@: SGD with decoupled weight decay",
             graft::KeySpec("lr", 0.01, "learning rate").greater_than(0),
             graft::KeySpec("weight_decay", 0.0, "decoupled weight decay").min(0));
)~",
        "optimizer: {name: @NAME@, lr: 0.05}\n", "name: @NAME@"}},
      {Kind::scheduler,
       {"#include <cmath>\n\n#include <graft/schedule.h>\n",
        R"~(// The lr of a group as a closed-form function of its initial lr and the scheduler step
// count (Python's last_epoch): groups added later and resumed runs follow it exactly.
class @CLASS@ : public graft::Scheduler {
 public:
  explicit @CLASS@(const graft::Config& c) : gamma_(c.get<double>("gamma")) {}
  double lr(double base_lr, std::int64_t count) const override {
    return base_lr * std::pow(gamma_, static_cast<double>(count));
  }

 private:
  double gamma_;
};

std::shared_ptr<graft::Scheduler> make_@NAME@(const graft::Config& c) { return std::make_shared<@CLASS@>(c); }

}  // namespace

GRAFT_PLUGIN(scheduler, "@NAME@", make_@NAME@, "@NAME@: lr * gamma^count",
             graft::KeySpec("gamma", 0.9, "factor per scheduler step").greater_than(0).max(1));
)~",
        "scheduler: {name: @NAME@, gamma: 0.8}\n", "name: @NAME@"}},
      {Kind::loss,
       {"#include <graft/metrics.h>\n",
        R"~(// The mean loss of a batch: output [N, K] logits, target [N] class indices.
class @CLASS@ : public graft::Loss {
 public:
  explicit @CLASS@(const graft::Config& c) : smoothing_(c.get<double>("smoothing")) {}
  torch::Tensor forward(const torch::Tensor& output, const torch::Tensor& target) const override {
    const auto logp = torch::log_softmax(output, 1);
    const auto nll = -logp.gather(1, target.unsqueeze(1)).squeeze(1);
    return ((1 - smoothing_) * nll - smoothing_ * logp.mean(1)).mean();
  }

 private:
  double smoothing_;
};

std::shared_ptr<graft::Loss> make_@NAME@(const graft::Config& c) { return std::make_shared<@CLASS@>(c); }

}  // namespace

GRAFT_PLUGIN(loss, "@NAME@", make_@NAME@, "@NAME@: cross-entropy with label smoothing",
             graft::KeySpec("smoothing", 0.1, "label smoothing").min(0).less_than(1));
)~",
        "loss: @NAME@\n", "name: @NAME@"}},
      {Kind::metric,
       {"#include <graft/metrics.h>\n",
        R"~(// Accumulated over the batches of a pass. Its running sums go into checkpoints
// (save_state / load_state), so a run resumed mid-epoch reports the same values.
class @CLASS@ : public graft::Metric {
 public:
  void reset() override { correct_ = total_ = 0; }
  void update(const torch::Tensor& output, const torch::Tensor& target) override {
    correct_ += output.argmax(1).eq(target).sum().item<std::int64_t>();
    total_ += target.size(0);
  }
  std::map<std::string, double> compute() const override {
    return {{"@NAME@", total_ ? static_cast<double>(correct_) / static_cast<double>(total_) : 0.0}};
  }
  void save_state(graft::State& s) const override {
    s.set("correct", correct_);
    s.set("total", total_);
  }
  void load_state(const graft::State& s) override {
    correct_ = s.get<std::int64_t>("correct");
    total_ = s.get<std::int64_t>("total");
  }

 private:
  std::int64_t correct_ = 0, total_ = 0;
};

std::shared_ptr<graft::Metric> make_@NAME@(const graft::Config&) { return std::make_shared<@CLASS@>(); }

}  // namespace

GRAFT_PLUGIN(metric, "@NAME@", make_@NAME@, "@NAME@: top-1 accuracy");
)~",
        "metrics: [accuracy, @NAME@]\n", "name: @NAME@"}},
  };
  return all;
}

// The base recipe, top-level keys in the order they are written: a small CNN on synthetic
// data, a few steps. A kind's own lines (one top-level key) take the place of the base's
// key of that name, or come where the key goes.
const char* const recipe_sections[][2] = {
    {"model", "model:\n  backbone: {name: simple_cnn, width: 8, hidden: 32}\n"},
    {"data", "data:\n  dataset: {name: synthetic, train_size: 256, test_size: 64}\n  val: none\n  batch_size: 32\n  workers: 0\n"},
    {"optimizer", "optimizer: {name: sgd, lr: 0.05, momentum: 0.9}\n"},
    {"scheduler", ""},
    {"loss", ""},
    {"metrics", ""},
    {"hooks", ""},
    {"checkpoint", ""},
    {"trainer", "trainer: {epochs: 2, threads: 1}\n"},
};

std::string fill(std::string text, const std::map<std::string, std::string>& values) {
  for (const auto& [key, value] : values)
    for (auto at = text.find(key); at != std::string::npos; at = text.find(key, at + value.size()))
      text.replace(at, key.size(), value);
  return text;
}

std::string camel(const std::string& name) {
  std::string out;
  bool upper = true;
  for (char c : name) {
    if (c == '_') {
      upper = true;
      continue;
    }
    out += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    upper = false;
  }
  return out;
}

void write(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary);
  out << text;
  if (!out) throw Error::runtime("cannot write " + file.string());
}

}  // namespace

int cmd_new_plugin(const NewPluginArgs& args) {
  Kind kind;
  if (!parse_kind(args.kind, kind)) {
    std::string kinds;
    for (Kind k : all_kinds()) kinds += std::string(kinds.empty() ? "" : ", ") + kind_name(k);
    throw Error::usage("new-plugin: unknown kind '" + args.kind + "' (kinds: " + kinds + ")");
  }
  const std::string& name = args.name;
  bool valid = !name.empty() && std::islower(static_cast<unsigned char>(name[0]));
  for (char c : name) valid = valid && (std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_');
  if (!valid)
    throw Error::usage("new-plugin: invalid name '" + name +
                       "': lower case letters, digits and '_', starting with a letter (it names the plugin and its C++ code)");
  const fs::path dir = args.dir.empty() ? fs::path(name) : fs::path(args.dir);
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_empty(dir, ec))
    throw Error::usage("new-plugin: " + dir.string() + " exists and is not empty");
  fs::create_directories(dir, ec);
  if (ec) throw Error::usage("new-plugin: cannot create " + dir.string() + ": " + ec.message());

  const Template& t = templates().at(kind);
  const std::map<std::string, std::string> values = {
      {"@NAME@", name}, {"@CLASS@", camel(name)}, {"@KIND@", kind_name(kind)}};

  write(dir / (name + ".cpp"),
        fill("// @NAME@: a graft @KIND@ plugin. `graft plugins @KIND@` lists it once the library is on the\n"
             "// plugin path (GRAFT_PLUGIN_PATH, or a recipe's plugins:).\n"
             "#include <torch/torch.h>\n\n" +
                 std::string(t.includes) + "\nnamespace {\n\n" + t.source,
             values));

  write(dir / "CMakeLists.txt", fill(R"~(# The graft @KIND@ plugin @NAME@, built against an installed graft:
#   cmake -S . -B build -DCMAKE_PREFIX_PATH=<graft's prefix> && cmake --build build && ctest --test-dir build
cmake_minimum_required(VERSION 3.18)
project(@NAME@ LANGUAGES CXX)

find_package(graft REQUIRED)
# The plugin library (lib@NAME@.so): graft's ABI stamp and manifest export are added, and
# every source reuses one precompiled LibTorch header.
graft_add_plugin(@NAME@ SOURCES @NAME@.cpp)

# The test loads the built library as graft does and makes the plugin from its defaults.
find_package(Boost 1.74 REQUIRED COMPONENTS unit_test_framework)
enable_testing()
add_executable(test_@NAME@ test_@NAME@.cpp)
target_link_libraries(test_@NAME@ PRIVATE graft::core Boost::unit_test_framework)
target_compile_definitions(test_@NAME@ PRIVATE BOOST_TEST_DYN_LINK PLUGIN_FILE="$<TARGET_FILE:@NAME@>")
set_target_properties(test_@NAME@ PROPERTIES CXX_STANDARD 17)
add_dependencies(test_@NAME@ @NAME@)
add_test(NAME test_@NAME@ COMMAND test_@NAME@)
)~",
                                     values));

  write(dir / ("test_" + name + ".cpp"),
        fill(R"~(// The plugin, loaded from the built library as graft loads it (ABI and LibTorch version
// checked), then made from a recipe node. Add checks of what it does here.
#define BOOST_TEST_MODULE @NAME@
#include <boost/test/unit_test.hpp>

#include <graft/host/recipe.h>
#include <graft/host/registry.h>

BOOST_AUTO_TEST_CASE(loads_and_makes_@NAME@) {
  graft::Registry registry;
  BOOST_TEST_REQUIRE(registry.load_library(PLUGIN_FILE));
  const auto* plugin = registry.find(graft::Kind::@KIND@, "@NAME@");
  BOOST_TEST_REQUIRE(plugin != nullptr);
  BOOST_TEST(!plugin->entry.doc.empty());
  const auto made = registry.create_any(graft::Kind::@KIND@, graft::parse_yaml_text("@SPEC@", "test"));
  BOOST_TEST(made.has_value());
}
)~",
             [&] {
               auto v = values;
               v["@SPEC@"] = fill(t.test_spec, values);
               return v;
             }()));

  std::string recipe = fill("# @NAME@ (a @KIND@ plugin) in a short run on synthetic data: graft train recipe.yaml\n"
                            "description: the @KIND@ plugin @NAME@ on synthetic data\n"
                            "seed: 0\n"
                            "plugins: [build]                  # this project's build dir, relative to this file\n",
                            values);
  const std::string own = fill(t.recipe, values);
  for (const auto& [key, text] : recipe_sections) recipe += own.rfind(std::string(key) + ":", 0) == 0 ? own : text;
  write(dir / "recipe.yaml", recipe);

  write(dir / "README.md", fill(R"~(# @NAME@

A graft @KIND@ plugin, made by `graft new-plugin @KIND@ @NAME@`. `@NAME@.cpp` holds the
plugin and its registration line (GRAFT_PLUGIN); `recipe.yaml` uses it on synthetic data.

```sh
cmake -S . -B build -DCMAKE_PREFIX_PATH=/path/to/graft/prefix && cmake --build build
ctest --test-dir build                           # loads the library, makes the plugin
GRAFT_PLUGIN_PATH=$PWD/build graft plugins @KIND@  # lists @NAME@ with its keys
graft train recipe.yaml                          # the recipe's plugins: [build] finds it
```
)~",
                                values));

  std::cout << fmt::format("wrote {}: {}.cpp, test_{}.cpp, CMakeLists.txt, recipe.yaml, README.md\n", dir.string(), name, name);
  return 0;
}

}  // namespace graft::cli
