#include "train_state.h"

#include <torch/csrc/jit/serialization/pickle.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/core/Dict.h>
#include <ATen/core/List.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include "callbacks.h"
#include "graft/error.h"
#include "graft/log.h"
#include "graft/host/serialize.h"
#include "graft/version.h"
#include "graft/host/weights.h"
#include "loss_scaler.h"
#include "train/run_output.h"
#include "schedule_driver.h"
#include "trainable_set.h"

namespace fs = std::filesystem;

namespace graft {

const char* save_point_name(SavePoint at) {
  switch (at) {
    case SavePoint::step: return "step";
    case SavePoint::epoch: return "epoch";
    case SavePoint::end: return "end";
    case SavePoint::exception: return "exception";
  }
  return "?";
}

}  // namespace graft

namespace graft::train {

namespace {

using Dict = c10::impl::GenericDict;
Dict new_dict() { return Dict(c10::StringType::get(), c10::AnyType::get()); }

// ---- graft::State <-> the checkpoint's values ---------------------------------------------

c10::IValue to_ivalue(const State::Value& v) {
  return std::visit(
      [](const auto& x) -> c10::IValue {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate>) return c10::IValue();
        else if constexpr (std::is_same_v<T, torch::Tensor>) return x.detach().to(torch::kCPU);
        else if constexpr (std::is_same_v<T, std::vector<std::int64_t>>) return c10::List<std::int64_t>(x);
        else if constexpr (std::is_same_v<T, std::vector<double>>) return c10::List<double>(x);
        else if constexpr (std::is_same_v<T, std::vector<std::string>>) return c10::List<std::string>(x);
        else return c10::IValue(x);
      },
      v);
}

Dict to_dict(const State& s) {
  Dict d = new_dict();
  for (const auto& [k, v] : s.items()) d.insert(k, to_ivalue(v));
  return d;
}

// ---- checked reads -------------------------------------------------------------------------

/// A value of the checkpoint with its key path: every read says which key failed.
class Node {
 public:
  Node(const std::string& file, std::string path, c10::IValue v) : file_(file), path_(std::move(path)), v_(std::move(v)) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw Error::runtime(fmt::format("{}: checkpoint key '{}': {}", file_, path_, what));
  }
  bool has(const std::string& key) const { return v_.isGenericDict() && v_.toGenericDict().contains(key); }
  Node operator[](const std::string& key) const {
    if (!v_.isGenericDict()) fail(fmt::format("expected a dict, found {}", v_.tagKind()));
    const auto d = v_.toGenericDict();
    if (!d.contains(key)) fail(fmt::format("has no '{}'", key));
    return Node(file_, path_.empty() ? key : path_ + "." + key, d.at(key));
  }
  std::int64_t integer() const {
    if (!v_.isInt()) fail(fmt::format("expected an int, found {}", v_.tagKind()));
    return v_.toInt();
  }
  double number() const {
    if (v_.isInt()) return static_cast<double>(v_.toInt());
    if (!v_.isDouble()) fail(fmt::format("expected a number, found {}", v_.tagKind()));
    return v_.toDouble();
  }
  bool boolean() const {
    if (!v_.isBool()) fail(fmt::format("expected a bool, found {}", v_.tagKind()));
    return v_.toBool();
  }
  std::string text() const {
    if (!v_.isString()) fail(fmt::format("expected a string, found {}", v_.tagKind()));
    return v_.toStringRef();
  }
  torch::Tensor tensor() const {
    if (!v_.isTensor()) fail(fmt::format("expected a tensor, found {}", v_.tagKind()));
    return v_.toTensor();
  }
  std::vector<Node> list() const {
    if (!v_.isList()) fail(fmt::format("expected a list, found {}", v_.tagKind()));
    std::vector<Node> out;
    const auto l = v_.toList();
    for (std::size_t i = 0; i < l.size(); ++i) out.emplace_back(file_, fmt::format("{}[{}]", path_, i), l.get(i));
    return out;
  }
  /// A dict's entries (string keys), in order.
  std::vector<std::pair<std::string, Node>> entries() const {
    if (!v_.isGenericDict()) fail(fmt::format("expected a dict, found {}", v_.tagKind()));
    std::vector<std::pair<std::string, Node>> out;
    for (const auto& e : v_.toGenericDict()) {
      if (!e.key().isString()) fail("expected string keys");
      const std::string k = e.key().toStringRef();
      out.emplace_back(k, Node(file_, path_ + "." + k, e.value()));
    }
    return out;
  }
  /// A dict with int keys (Python's optimizer `state`): key -> node.
  std::map<std::int64_t, Node> by_index() const {
    if (!v_.isGenericDict()) fail(fmt::format("expected a dict, found {}", v_.tagKind()));
    std::map<std::int64_t, Node> out;
    for (const auto& e : v_.toGenericDict()) {
      if (!e.key().isInt()) fail("expected int keys");
      out.emplace(e.key().toInt(), Node(file_, fmt::format("{}.{}", path_, e.key().toInt()), e.value()));
    }
    return out;
  }
  /// A dict of plain values as a graft::State.
  State state() const {
    State s;
    for (const auto& [k, n] : entries()) s.set(k, n.value());
    return s;
  }
  State::Value value() const {
    if (v_.isNone()) return std::monostate{};
    if (v_.isBool()) return v_.toBool();
    if (v_.isInt()) return v_.toInt();
    if (v_.isDouble()) return v_.toDouble();
    if (v_.isString()) return v_.toStringRef();
    if (v_.isTensor()) return v_.toTensor();
    if (v_.isIntList()) return v_.toIntVector();
    if (v_.isDoubleList()) return v_.toDoubleVector();
    if (v_.isList() || v_.isTuple()) {  // a generic list or tuple (format 1's betas): of one element type
      const auto items = v_.isList() ? v_.toListRef().vec() : v_.toTupleRef().elements().vec();
      if (std::all_of(items.begin(), items.end(), [](const c10::IValue& x) { return x.isString(); })) {
        std::vector<std::string> out;
        for (const auto& x : items) out.push_back(x.toStringRef());
        return out;
      }
      if (std::all_of(items.begin(), items.end(), [](const c10::IValue& x) { return x.isInt(); })) {
        std::vector<std::int64_t> out;
        for (const auto& x : items) out.push_back(x.toInt());
        return out;
      }
      if (std::all_of(items.begin(), items.end(), [](const c10::IValue& x) { return x.isDouble() || x.isInt(); })) {
        std::vector<double> out;
        for (const auto& x : items) out.push_back(x.isInt() ? static_cast<double>(x.toInt()) : x.toDouble());
        return out;
      }
    }
    fail(fmt::format("a plugin state holds {}, not a value graft::State keeps", v_.tagKind()));
  }
  std::vector<std::string> strings() const {
    const auto v = value();
    if (const auto* l = std::get_if<std::vector<std::string>>(&v)) return *l;
    fail(fmt::format("expected a list of strings, found {}", v_.tagKind()));
  }
  std::vector<std::int64_t> integers() const {
    const auto v = value();
    if (const auto* l = std::get_if<std::vector<std::int64_t>>(&v)) return *l;
    if (const auto* l = std::get_if<std::vector<std::string>>(&v); l && l->empty()) return {};
    fail(fmt::format("expected a list of ints, found {}", v_.tagKind()));
  }
  const c10::IValue& raw() const { return v_; }

 private:
  const std::string& file_;
  std::string path_;
  c10::IValue v_;
};

// ---- RNG ------------------------------------------------------------------------------------

Dict rng_state() {
  Dict d = new_dict();
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    d.insert("cpu", gen.get_state());
  }
  c10::List<torch::Tensor> cuda;
  if (torch::cuda::is_available())
    for (std::size_t k = 0; k < torch::cuda::device_count(); ++k) {
      auto gen = at::globalContext().defaultGenerator(torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(k)));
      std::lock_guard<std::mutex> lock(gen.mutex());
      cuda.push_back(gen.get_state());
    }
  d.insert("cuda", cuda);
  return d;
}

// ---- the optimizer in Python's layout ----------------------------------------------------------

/// Python's `optimizer.state_dict()`: {'state': {index: {...}}, 'param_groups': [{lr, ...,
/// 'params': [index...], 'param_names': [name...]}]}, so torch.optim's load_state_dict
/// accepts it; graft restores it by parameter name, not by position.
Dict optimizer_state(Optimizer& optimizer, const std::vector<std::vector<std::string>>& names) {
  c10::impl::GenericDict state(c10::IntType::get(), c10::AnyType::get());
  c10::impl::GenericList groups(c10::AnyType::get());
  std::int64_t index = 0;
  for (std::size_t g = 0; g < optimizer.group_count(); ++g) {
    Dict d = to_dict(optimizer.group_options(g));
    c10::List<std::int64_t> params;
    c10::List<std::string> param_names;
    const auto& ps = optimizer.params(g);
    for (std::size_t i = 0; i < ps.size(); ++i, ++index) {
      params.push_back(index);
      param_names.push_back(names.at(g).at(i));
      const State s = optimizer.param_state(ps[i]);
      if (!s.empty()) state.insert(index, to_dict(s));
    }
    d.insert("params", params);
    d.insert("param_names", param_names);
    groups.push_back(d);
  }
  Dict out = new_dict();
  out.insert("state", state);
  out.insert("param_groups", groups);
  return out;
}

void load_optimizer_state(Optimizer& optimizer, const std::vector<std::vector<std::string>>& names, const Node& saved) {
  std::map<std::string, torch::Tensor> live;
  for (std::size_t g = 0; g < optimizer.group_count(); ++g)
    for (std::size_t i = 0; i < optimizer.params(g).size(); ++i) live[names.at(g).at(i)] = optimizer.params(g)[i];
  const auto state = saved["state"].by_index();
  std::vector<std::string> unknown;
  for (const auto& group : saved["param_groups"].list()) {
    const auto params = group["params"].list();
    const auto pnames = group["param_names"].list();
    if (params.size() != pnames.size()) group.fail("params and param_names differ in length");
    for (std::size_t i = 0; i < params.size(); ++i) {
      const std::string name = pnames[i].text();
      const auto it = live.find(name);
      if (it == live.end()) {
        unknown.push_back(name);
        continue;
      }
      const auto s = state.find(params[i].integer());
      if (s == state.end()) continue;  // no state yet (e.g. no step taken with it)
      try {
        optimizer.load_param_state(it->second, s->second.state());
      } catch (const Error& e) {
        s->second.fail(fmt::format("({}) {}", name, e.message()));
      }
    }
  }
  if (!unknown.empty())
    saved.fail(fmt::format("{} parameters with optimizer state are not trained by this recipe (first: {})", unknown.size(),
                           unknown.front()));
}

Dict states_of(const std::vector<std::pair<std::string, Stateful*>>& list) {
  Dict all = new_dict();
  for (const auto& [label, s] : list) {
    State state;
    s->save_state(state);
    if (!state.empty()) all.insert(label, to_dict(state));
  }
  return all;
}

void load_states(const std::vector<std::pair<std::string, Stateful*>>& list, const Node& saved, const char* kind) {
  for (const auto& [label, s] : list) {
    if (!saved.has(label)) continue;
    const Node n = saved[label];
    try {
      s->load_state(n.state());
    } catch (const Error& e) {
      n.fail(fmt::format("{} {}: {}", kind, label, e.message()));
    }
  }
}

}  // namespace

c10::IValue write_checkpoint(const RunParts& p, const SavePosition& at, const Recipe& recipe, const Plan& used) {
  Dict c = new_dict();
  c.insert("epoch", c10::IValue(at.epoch));  // epochs completed (seed 001's key)
  c.insert("step", c10::IValue(p.ctx.step));
  c10::Dict<std::string, torch::Tensor> weights;
  for (const auto& item : state_dict(p.model)) weights.insert(item.key(), item.value().detach().to(torch::kCPU));
  c.insert("model_state_dict", weights);
  c.insert("optimizer_state_dict", optimizer_state(p.trainable.optimizer(), p.trainable.param_names()));
  const auto loss = p.ctx.metrics.find("train/loss");
  c.insert("loss", c10::IValue(loss != p.ctx.metrics.end() ? loss->second : 0.0));
  c.insert("graft_version", c10::IValue(std::string(GRAFT_VERSION)));
  c.insert("hooks", states_of(p.callbacks.hook_states()));
  State schedule;
  p.schedule.save_state(schedule);
  if (!schedule.empty()) c.insert("scheduler", to_dict(schedule));

  Dict g = new_dict();
  g.insert("format", c10::IValue(checkpoint_format));
  g.insert("exact", at.at != SavePoint::exception);
  g.insert("saved_at", std::string(save_point_name(at.at)));
  Dict pos = new_dict();
  pos.insert("epoch", c10::IValue(at.epoch));
  pos.insert("batch", c10::IValue(at.batch));
  pos.insert("batches_per_epoch", c10::IValue(at.batches_per_epoch));
  pos.insert("samples", c10::IValue(at.samples));
  pos.insert("world", c10::IValue(at.world));
  pos.insert("batch_size", c10::IValue(at.batch_size));
  g.insert("position", pos);
  g.insert("rng", rng_state());
  State amp;
  p.scaler.save_state(amp);
  g.insert("amp", to_dict(amp));
  Dict sums = new_dict();
  sums.insert("loss_sum", p.sums.loss_sum);
  sums.insert("seen", c10::IValue(p.sums.seen));
  g.insert("train_sums", sums);
  Dict metrics = new_dict();
  for (const auto& [k, v] : p.ctx.metrics) metrics.insert(k, v);
  g.insert("metrics", metrics);
  g.insert("metric_states", states_of(p.metrics));
  g.insert("checkpoint", states_of(p.callbacks.strategy_states()));
  Dict fr = new_dict();
  fr.insert("epoch", c10::IValue(p.ctx.epoch));
  const auto& frozen = p.trainable.frozen().frozen;
  fr.insert("frozen", c10::List<std::string>(std::vector<std::string>(frozen.begin(), frozen.end())));
  g.insert("freeze", fr);
  g.insert("recipe", recipe.root.to_yaml());
  g.insert("recipe_file", recipe.file);
  g.insert("classes", c10::List<std::string>(p.classes));
  g.insert("sample_shape", c10::List<std::int64_t>(p.sample_shape));
  Dict versions = new_dict();
  versions.insert("graft", std::string(GRAFT_VERSION));
  versions.insert("libtorch", std::string(TORCH_VERSION));
  versions.insert("plugin_abi", c10::IValue(static_cast<std::int64_t>(GRAFT_ABI_VERSION)));
  c10::List<std::string> plugins;
  for (const auto& u : used.plugins)
    plugins.push_back(fmt::format("{}:{} ({})", kind_name(u.kind), u.name, fs::path(u.library).filename().string()));
  versions.insert("plugins", plugins);
  g.insert("versions", versions);
  g.insert("seconds", at.seconds);
  c.insert("graft", g);
  return c;
}

Checkpoint Checkpoint::load(const std::string& path) {
  return from(path, read_torch_file(path));  // checks every record's CRC-32
}

bool Checkpoint::is_checkpoint(const c10::IValue& root) {
  return root.isGenericDict() && root.toGenericDict().contains(std::string("graft"));
}

Checkpoint Checkpoint::from(const std::string& path, c10::IValue contents) {
  Checkpoint c;
  c.path_ = path;
  c.root_ = std::move(contents);
  if (!c.root_.isGenericDict()) throw Error::runtime(path + ": not a graft checkpoint (not a dict)");
  const Node root(c.path_, "", c.root_);
  if (!root.has("graft"))
    throw Error::runtime(path + ": not a graft checkpoint to resume from (no 'graft' entry: a weights file? use "
                                "--resume-weights-only)");
  const Node g = root["graft"];
  c.format_ = g.has("format") ? g["format"].integer() : 0;
  if (c.format_ < 1 || c.format_ > checkpoint_format)
    throw Error::runtime(fmt::format("{}: checkpoint format {}; this graft reads formats 1 to {}", path, c.format_,
                                     checkpoint_format));
  for (const char* key : {"model_state_dict", "optimizer_state_dict"})
    if (!root.has(key)) root[key];  // fails naming the key
  c.exact_ = g.has("exact") && g["exact"].boolean();
  c.epoch_ = g["position"]["epoch"].integer();
  c.batch_ = g["position"]["batch"].integer();
  if (g["position"].has("samples")) {
    c.samples_ = g["position"]["samples"].integer();
    c.world_ = g["position"]["world"].integer();
    c.batch_size_ = g["position"]["batch_size"].integer();
  }
  c.step_ = root["step"].integer();
  c.recipe_ = g["recipe"].text();
  if (g.has("recipe_file")) c.recipe_file_ = g["recipe_file"].text();
  if (g.has("classes")) c.classes_ = g["classes"].strings();
  if (g.has("sample_shape")) c.sample_shape_ = g["sample_shape"].integers();
  return c;
}

StateDict Checkpoint::weights() const {
  const Node root(path_, "", root_);
  StateDict weights;
  for (const auto& [k, n] : root["model_state_dict"].entries()) weights.insert(k, n.tensor());
  return weights;
}

double Checkpoint::restore(RunParts& p) const {
  const Node root(path_, "", root_);
  const Node g = root["graft"];
  const LoadReport r = load_weights(p.model, weights(), /*strict=*/false, path_);
  if (!r.clean()) throw Error::usage(fmt::format("{}: does not fit the recipe's model: {}", path_, r.summary()));
  load_optimizer_state(p.trainable.optimizer(), p.trainable.param_names(), root["optimizer_state_dict"]);
  if (root.has("scheduler")) {
    try {
      p.schedule.load_state(root["scheduler"].state());
    } catch (const Error& e) {
      root["scheduler"].fail(e.message());
    }
  }
  try {
    p.scaler.load_state(g["amp"].state());
  } catch (const Error& e) {
    g["amp"].fail(e.message());
  }
  p.ctx.step = step_;
  p.ctx.epoch = epoch_;
  for (const auto& [k, n] : g["metrics"].entries()) p.ctx.metrics[k] = n.number();
  p.sums.loss_sum = g["train_sums"]["loss_sum"].number();
  p.sums.seen = g["train_sums"]["seen"].integer();
  load_states(p.callbacks.hook_states(), root["hooks"], "hook");
  load_states(p.callbacks.strategy_states(), g["checkpoint"], "checkpoint strategy");
  if (g.has("metric_states")) load_states(p.metrics, g["metric_states"], "metric");
  else if (batch_ > 0)
    log::warn("{}: a format-1 checkpoint keeps no metric sums: this epoch's train/* metrics (but the loss) cover the "
              "batches from the resume on",
              path_);
  return g["seconds"].number();
}

void Checkpoint::restore_rng() const {
  const Node rng = Node(path_, "", root_)["graft"]["rng"];
  if (rng.has("cpu")) {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(rng["cpu"].tensor());
  }
  if (rng.has("cuda") && torch::cuda::is_available()) {
    const auto saved = rng["cuda"].list();
    const std::size_t n = std::min<std::size_t>(saved.size(), torch::cuda::device_count());
    for (std::size_t k = 0; k < n; ++k) {
      auto gen = at::globalContext().defaultGenerator(torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(k)));
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(saved[k].tensor());
    }
  }
}

void Checkpoint::release() { root_ = c10::IValue(); }

std::optional<Checkpoint> newest_good(const std::string& checkpoints_dir) {
  for (const auto& path : checkpoint_files(checkpoints_dir)) {
    try {
      Checkpoint c = Checkpoint::load(path);
      if (!c.exact()) {
        log::info("{}: saved at an exception, not an exact resume point: passed over (name it in --resume to use it)", path);
        continue;
      }
      return c;
    } catch (const Error& e) {
      log::warn("{} -- passed over, trying the previous checkpoint", e.what());
    }
  }
  return std::nullopt;
}

std::vector<std::pair<std::string, Stateful*>> metric_states(const std::vector<std::shared_ptr<Metric>>& metrics) {
  std::vector<std::pair<std::string, Stateful*>> out;
  for (std::size_t k = 0; k < metrics.size(); ++k) out.emplace_back(std::to_string(k), metrics[k].get());
  return out;
}

std::string state_bytes(const State& state) {
  const auto bytes = torch::pickle_save(c10::IValue(to_dict(state)));
  return std::string(bytes.begin(), bytes.end());
}

State state_from_bytes(const std::string& bytes, const std::string& what) {
  return Node(what, "", torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()))).state();
}

}  // namespace graft::train
