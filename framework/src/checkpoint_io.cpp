#include "checkpoint_io.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/core/List.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/cuda.h>
#include <torch/optim.h>

#include "graft/checkpoint.h"
#include "graft/error.h"
#include "graft/optim.h"
#include "graft/recipe.h"
#include "graft/serialize.h"

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

namespace graft::ckpt {

Dict new_dict() { return Dict(c10::StringType::get(), c10::AnyType::get()); }

namespace {

torch::Tensor cpu(const torch::Tensor& t) { return t.detach().to(torch::kCPU); }
c10::IValue step_tensor(std::int64_t step) { return torch::tensor(static_cast<double>(step), torch::kFloat); }

std::int64_t step_of(const c10::IValue& v) {
  if (v.isTensor()) return static_cast<std::int64_t>(v.toTensor().item<double>());
  if (v.isInt()) return v.toInt();
  if (v.isDouble()) return static_cast<std::int64_t>(v.toDouble());
  throw std::runtime_error("'step' is not a number");
}

// Adam and AdamW: the same keys, in Python and in LibTorch.
template <class Options> void put_adam_options(const Options& p, Dict& g) {
  g.insert("betas", c10::ivalue::Tuple::create(std::get<0>(p.betas()), std::get<1>(p.betas())));
  g.insert("eps", p.eps());
  g.insert("weight_decay", p.weight_decay());
  g.insert("amsgrad", p.amsgrad());
  g.insert("maximize", false);
  g.insert("foreach", c10::IValue());
  g.insert("capturable", false);
  g.insert("differentiable", false);
}

template <class State> void put_adam_state(const State& p, Dict& d) {
  d.insert("step", step_tensor(p.step()));
  for (const auto& [k, t] : {std::pair<const char*, torch::Tensor>{"exp_avg", p.exp_avg()},
                             {"exp_avg_sq", p.exp_avg_sq()}, {"max_exp_avg_sq", p.max_exp_avg_sq()}})
    if (t.defined()) d.insert(k, cpu(t));
}

Dict options_of(const torch::optim::OptimizerOptions& o) {
  Dict g = new_dict();
  g.insert("lr", o.get_lr());
  const c10::IValue none;
  if (auto* p = dynamic_cast<const torch::optim::SGDOptions*>(&o)) {
    g.insert("momentum", p->momentum());
    g.insert("dampening", p->dampening());
    g.insert("weight_decay", p->weight_decay());
    g.insert("nesterov", p->nesterov());
    g.insert("maximize", false);
    g.insert("foreach", none);
    g.insert("differentiable", false);
  } else if (auto* p = dynamic_cast<const torch::optim::AdamOptions*>(&o)) {
    put_adam_options(*p, g);
  } else if (auto* p = dynamic_cast<const torch::optim::AdamWOptions*>(&o)) {
    put_adam_options(*p, g);
  } else if (auto* p = dynamic_cast<const torch::optim::RMSpropOptions*>(&o)) {
    g.insert("momentum", p->momentum());
    g.insert("alpha", p->alpha());
    g.insert("eps", p->eps());
    g.insert("centered", p->centered());
    g.insert("weight_decay", p->weight_decay());
    g.insert("foreach", none);
    g.insert("maximize", false);
    g.insert("differentiable", false);
  }
  return g;
}

Dict param_state(const torch::optim::OptimizerParamState& s) {
  Dict d = new_dict();
  auto put = [&](const char* k, const torch::Tensor& t) {
    if (t.defined()) d.insert(k, cpu(t));
  };
  if (auto* p = dynamic_cast<const torch::optim::SGDParamState*>(&s)) {
    put("momentum_buffer", p->momentum_buffer());
  } else if (auto* p = dynamic_cast<const torch::optim::AdamParamState*>(&s)) {
    put_adam_state(*p, d);
  } else if (auto* p = dynamic_cast<const torch::optim::AdamWParamState*>(&s)) {
    put_adam_state(*p, d);
  } else if (auto* p = dynamic_cast<const torch::optim::RMSpropParamState*>(&s)) {
    d.insert("step", step_tensor(p->step()));
    put("square_avg", p->square_avg());
    put("momentum_buffer", p->momentum_buffer());
    put("grad_avg", p->grad_avg());
  } else {
    throw Error::runtime("the optimizer keeps a state graft cannot save (supported: sgd, adam, adamw, rmsprop)");
  }
  return d;
}

std::unique_ptr<torch::optim::OptimizerParamState> make_param_state(const torch::optim::Optimizer& opt, const Dict& d,
                                                                    const torch::Tensor& param) {
  auto t = [&](const char* k) {
    if (!d.contains(k)) return torch::Tensor();
    const auto v = d.at(k);
    if (!v.isTensor()) throw std::runtime_error(std::string("'") + k + "' is not a tensor");
    const auto x = v.toTensor();
    if (x.sizes() != param.sizes()) throw std::runtime_error(std::string("'") + k + "' has another shape than the parameter");
    // a copy: the loaded tensors share one buffer with the whole checkpoint file
    return x.to(param.device(), param.scalar_type(), /*non_blocking=*/false, /*copy=*/true).contiguous();
  };
  auto step = [&] { return d.contains("step") ? step_of(d.at("step")) : 0; };
  if (dynamic_cast<const torch::optim::SGD*>(&opt)) {
    auto s = std::make_unique<torch::optim::SGDParamState>();
    s->momentum_buffer(t("momentum_buffer"));
    return s;
  }
  if (dynamic_cast<const torch::optim::AdamW*>(&opt)) {
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(step()).exp_avg(t("exp_avg")).exp_avg_sq(t("exp_avg_sq")).max_exp_avg_sq(t("max_exp_avg_sq"));
    return s;
  }
  if (dynamic_cast<const torch::optim::Adam*>(&opt)) {
    auto s = std::make_unique<torch::optim::AdamParamState>();
    s->step(step()).exp_avg(t("exp_avg")).exp_avg_sq(t("exp_avg_sq")).max_exp_avg_sq(t("max_exp_avg_sq"));
    return s;
  }
  if (dynamic_cast<const torch::optim::RMSprop*>(&opt)) {
    auto s = std::make_unique<torch::optim::RMSpropParamState>();
    s->step(step()).square_avg(t("square_avg")).momentum_buffer(t("momentum_buffer")).grad_avg(t("grad_avg"));
    return s;
  }
  throw std::runtime_error("graft cannot restore this optimizer's state (supported: sgd, adam, adamw, rmsprop)");
}

}  // namespace

std::vector<std::vector<std::string>> group_param_names(const torch::optim::Optimizer& optimizer,
                                                        const torch::nn::Module& model) {
  std::map<const void*, std::string> name_of;
  for (const auto& p : model.named_parameters()) name_of[p.value().unsafeGetTensorImpl()] = p.key();
  std::vector<std::vector<std::string>> out;
  for (const auto& g : optimizer.param_groups()) {
    out.emplace_back();
    for (const auto& p : g.params()) {
      const auto it = name_of.find(p.unsafeGetTensorImpl());
      if (it == name_of.end()) throw Error::runtime("the optimizer holds a tensor that is not a parameter of the model");
      out.back().push_back(it->second);
    }
  }
  return out;
}

Dict optimizer_state(const torch::optim::Optimizer& optimizer, const std::vector<std::vector<std::string>>& names) {
  c10::impl::GenericDict state(c10::IntType::get(), c10::AnyType::get());
  c10::impl::GenericList groups(c10::AnyType::get());
  const auto& live = optimizer.state();
  std::int64_t index = 0;
  for (std::size_t g = 0; g < optimizer.param_groups().size(); ++g) {
    const auto& group = optimizer.param_groups()[g];
    Dict d = options_of(group.options());
    c10::List<std::int64_t> params;
    c10::List<std::string> param_names;
    for (std::size_t i = 0; i < group.params().size(); ++i, ++index) {
      params.push_back(index);
      param_names.push_back(names.at(g).at(i));
      const auto it = live.find(optimizer_state_key(group.params()[i]));
      if (it != live.end() && it->second) state.insert(index, param_state(*it->second));
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

void load_optimizer_state(torch::optim::Optimizer& optimizer, const std::vector<std::vector<std::string>>& names,
                          const Dict& saved, const std::string& file) {
  std::map<std::string, torch::Tensor> live;
  for (std::size_t g = 0; g < optimizer.param_groups().size(); ++g)
    for (std::size_t i = 0; i < optimizer.param_groups()[g].params().size(); ++i)
      live[names.at(g).at(i)] = optimizer.param_groups()[g].params()[i];
  try {
    const auto state = saved.at("state").toGenericDict();
    auto& target = optimizer.state();
    target.clear();
    std::vector<std::string> unknown;
    for (const auto& gv : saved.at("param_groups").toList()) {
      const auto group = gv.get().toGenericDict();
      const auto params = group.at("params").toList();
      const auto pnames = group.at("param_names").toList();
      if (params.size() != pnames.size()) throw std::runtime_error("a group's params and param_names differ in length");
      for (std::size_t i = 0; i < params.size(); ++i) {
        const std::string name = pnames.get(i).toStringRef();
        const auto it = live.find(name);
        if (it == live.end()) {
          unknown.push_back(name);
          continue;
        }
        const c10::IValue index = params.get(i);
        if (!state.contains(index)) continue;  // no state yet (e.g. no step taken with it)
        target[optimizer_state_key(it->second)] =
            make_param_state(optimizer, state.at(index).toGenericDict(), it->second);
      }
    }
    if (!unknown.empty())
      throw std::runtime_error(fmt::format("{} parameters with optimizer state are not trained by this recipe (first: {})",
                                           unknown.size(), unknown.front()));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error::runtime(fmt::format("{}: optimizer_state_dict cannot be restored: {}", file, e.what()));
  }
}

// ---- RNG ---------------------------------------------------------------------------------

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

void set_rng_state(const Dict& state) {
  if (state.contains("cpu")) {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state.at("cpu").toTensor());
  }
  if (state.contains("cuda") && torch::cuda::is_available()) {
    const auto saved = state.at("cuda").toList();
    const std::size_t n = std::min<std::size_t>(saved.size(), torch::cuda::device_count());
    for (std::size_t k = 0; k < n; ++k) {
      auto gen = at::globalContext().defaultGenerator(torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(k)));
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(saved.get(k).toTensor());
    }
  }
}

// ---- recipe diff -------------------------------------------------------------------------

namespace {
void flatten(const Config& c, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (c.is_map()) {
    const auto keys = c.keys();
    if (keys.empty()) out[prefix] = "{}";
    for (const auto& k : keys) flatten(c[k], prefix.empty() ? k : prefix + "." + k, out);
  } else if (c.is_list()) {
    const auto items = c.items();
    if (items.empty()) out[prefix] = "[]";
    for (std::size_t i = 0; i < items.size(); ++i) flatten(items[i], prefix + "." + std::to_string(i), out);
  } else {
    out[prefix] = c.is_null() ? "~" : c.scalar();
  }
}
}  // namespace

std::vector<std::string> recipe_diff(const std::string& saved_yaml, const std::string& current_yaml) {
  std::map<std::string, std::string> a, b;
  flatten(parse_yaml_text(saved_yaml, "the checkpoint's recipe"), "", a);
  flatten(parse_yaml_text(current_yaml, "the recipe"), "", b);
  std::vector<std::string> out;
  for (const auto& [k, v] : a) {
    const auto it = b.find(k);
    if (it == b.end()) out.push_back(fmt::format("{}: {} -> (removed)", k, v));
    else if (it->second != v) out.push_back(fmt::format("{}: {} -> {}", k, v, it->second));
  }
  for (const auto& [k, v] : b)
    if (!a.count(k)) out.push_back(fmt::format("{}: (absent) -> {}", k, v));
  return out;
}

bool changes_model(const std::string& line) {
  // the pretrained source does not matter once the checkpoint holds every weight
  return line.rfind("model.", 0) == 0 && line.rfind("model.weights", 0) != 0;
}

// ---- finding a checkpoint --------------------------------------------------------------

Loaded load(const std::string& path) {
  Loaded l;
  l.path = path;
  const c10::IValue v = read_torch_file(path);  // checks every record's CRC-32
  if (!v.isGenericDict()) throw Error::runtime(path + ": not a graft checkpoint (not a dict)");
  l.dict = v.toGenericDict();
  if (!l.dict.contains("graft") || !l.dict.at("graft").isGenericDict())
    throw Error::runtime(path + ": not a graft checkpoint to resume from (no 'graft' entry: a weights file? use "
                                "--resume-weights-only)");
  const auto g = l.dict.at("graft").toGenericDict();
  const std::int64_t format = g.contains("format") ? g.at("format").toInt() : 0;
  if (format < 1 || format > format_version)
    throw Error::runtime(fmt::format("{}: checkpoint format {} (this graft reads 1..{})", path, format, format_version));
  for (const char* key : {"model_state_dict", "optimizer_state_dict"})
    if (!l.dict.contains(key)) throw Error::runtime(fmt::format("{}: the checkpoint has no '{}'", path, key));
  l.exact = g.contains("exact") && g.at("exact").toBool();
  return l;
}

std::vector<std::string> candidates(const std::string& checkpoints_dir) {
  std::vector<std::pair<fs::file_time_type, std::string>> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(checkpoints_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.' || e.path().extension() != ".pth" || !e.is_regular_file(ec)) continue;
    files.emplace_back(fs::last_write_time(e.path(), ec), name);
  }
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a > b; });
  std::vector<std::string> out;
  for (const auto& f : files) out.push_back((fs::path(checkpoints_dir) / f.second).string());
  return out;
}

std::optional<Loaded> newest_good(const std::string& checkpoints_dir) {
  for (const auto& path : candidates(checkpoints_dir)) {
    try {
      Loaded l = load(path);
      if (!l.exact) {
        spdlog::info("{}: saved at an exception, not an exact resume point: passed over (name it in --resume to use it)", path);
        continue;
      }
      return l;
    } catch (const Error& e) {
      spdlog::warn("{} -- passed over, trying the previous checkpoint", e.what());
    }
  }
  return std::nullopt;
}

}  // namespace graft::ckpt
