// Tracing a graft model into TorchScript from C++ (../shared/FACTS.md, "TorchScript from
// C++"): the module tree is mirrored into a torch::jit::Module that registers the *same*
// tensors, so the tracer turns every weight into an attribute read of `self` and the file
// keeps the state-dict keys; the traced graph becomes that module's forward.
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <filesystem>
#include <fstream>

#include "graft/error.h"
#include "graft/host/script.h"
#include "graft/model.h"
#include "graft/version.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace graft {

namespace {

constexpr const char* kInfoFile = "graft.json";
constexpr int kInfoFormat = 1;

std::string shape_str(at::IntArrayRef s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

/// One line of a LibTorch error: the message, not the backtrace; for the TorchScript
/// interpreter's (a traceback, then "RuntimeError: ..."), that last line.
std::string error_line(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  const std::string what = c10 ? c10->what_without_backtrace() : e.what();
  const auto at = what.rfind("\nRuntimeError: ");
  const std::string text = at == std::string::npos ? what : what.substr(at + 15);
  return text.substr(0, text.find('\n'));
}

/// A TorchScript class name from a module's type name.
std::string class_name(const torch::nn::Module& m) {
  std::string name = type_name(m);
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name.empty() || std::isdigit(static_cast<unsigned char>(name[0])) ? "M" + name : name;
}

/// The TorchScript twin of `m`: the same tensors under the same names, a `training` flag on
/// every module (Python's train()/eval() set it). Class names repeat (many Conv2d), so the
/// compilation unit mangles them.
torch::jit::Module mirror(const torch::nn::Module& m, const std::shared_ptr<torch::jit::CompilationUnit>& cu) {
  torch::jit::Module j(c10::QualifiedName("__torch__.graft." + class_name(m)), cu, /*shouldMangle=*/true);
  j.register_attribute("training", c10::BoolType::get(), false);
  for (const auto& p : m.named_parameters(/*recurse=*/false)) j.register_parameter(p.key(), p.value(), false);
  for (const auto& b : m.named_buffers(/*recurse=*/false)) j.register_buffer(b.key(), b.value());
  for (const auto& c : m.named_children()) j.register_module(c.key(), mirror(*c.value(), cu));
  return j;
}

torch::jit::Module trace_raw(torch::nn::AnyModule& model, const at::Tensor& example) {
  auto cu = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module root = mirror(*model.ptr(), cu);
  auto fn = [&](torch::jit::Stack in) -> torch::jit::Stack { return {model.forward(in.at(0).toTensor())}; };
  auto traced = torch::jit::tracer::trace({example}, fn, [](const at::Tensor&) { return std::string(); },
                                          /*strict=*/true, /*force_outplace=*/false, &root);
  auto method = cu->create_function(c10::QualifiedName(*root.type()->name(), "forward"), traced.first->graph);
  root.type()->addMethod(method);
  return root;
}

/// Seeded inputs that leave the global generator alone.
at::Tensor probe(std::int64_t batch, const std::vector<std::int64_t>& sample, std::uint64_t seed) {
  std::vector<std::int64_t> shape{batch};
  shape.insert(shape.end(), sample.begin(), sample.end());
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::randn(shape, gen, torch::kFloat);
}

/// "" when the trace of `model` on `a` gives what the model gives on `b`; else why not.
std::string unfaithful(torch::nn::AnyModule& model, const at::Tensor& a, const at::Tensor& b) {
  at::Tensor expected;
  try {
    expected = model.forward(b);
  } catch (const std::exception&) {
    return "";  // the model itself fails on this input: nothing to say about the trace
  }
  try {
    auto traced = trace_raw(model, a);
    const auto got = traced.forward({b}).toTensor();
    if (got.sizes() != expected.sizes())
      return fmt::format("the trace gives {} where the module gives {}", shape_str(got.sizes()), shape_str(expected.sizes()));
    const double scale = std::max(1.0, expected.abs().max().item<double>());
    const double diff = (got - expected).abs().max().item<double>();
    if (!(diff <= 1e-5 * scale))
      return fmt::format("the trace's outputs differ by up to {:.3g} on another input", diff);
  } catch (const std::exception& e) {
    return "the trace fails on a batch of " + std::to_string(b.size(0)) + ": " + error_line(e);
  }
  return "";
}

/// The deepest stage of a Stages tree whose trace is not faithful (its dotted path), with
/// why; the model's own path ("") when no single stage is.
std::pair<std::string, std::string> locate(torch::nn::AnyModule& model, at::Tensor a, at::Tensor b, const std::string& path) {
  const std::string why = unfaithful(model, a, b);
  if (why.empty()) return {"", ""};
  if (auto stages = std::dynamic_pointer_cast<StagesImpl>(model.ptr())) {
    for (auto& [name, stage] : stages->stages()) {
      auto& child = const_cast<torch::nn::AnyModule&>(stage);
      const std::string child_path = path.empty() ? name : path + "." + name;
      auto found = locate(child, a, b, child_path);
      if (!found.first.empty()) return found;
      a = child.forward(a);
      b = child.forward(b);
    }
  }
  return {path, why};
}

std::string read_text(const json& j, const char* key, const std::string& source) {
  if (!j.contains(key)) throw Error::usage(source + ": graft.json has no '" + key + "'");
  if (!j[key].is_string()) throw Error::usage(source + ": graft.json '" + key + "' is not a string");
  return j[key].get<std::string>();
}

}  // namespace

// ---- graft.json ----------------------------------------------------------------------

std::string DeployInfo::to_json() const {
  json transforms = json::parse(transforms_json);
  // The preprocessing in torchvision's words, for readers that do not run graft's
  // transforms (a C++ program, a Python script).
  json pre = json::object();
  for (const auto& t : transforms) {
    if (!t.is_object() || !t.contains("name")) continue;
    const auto name = t["name"].get<std::string>();
    if (name == "resize") {
      pre["resize"] = t.value("size", json());
      pre["interpolation"] = t.value("interpolation", "bilinear");
      pre["antialias"] = t.value("antialias", false);
    } else if (name == "center_crop") {
      pre["crop"] = t.value("size", json());
    } else if (name == "normalize") {
      pre["mean"] = t.value("mean", json());
      pre["std"] = t.value("std", json());
    }
  }
  pre["scale"] = "x / 255 (to_tensor), channels first, RGB";
  json j = {{"format", kInfoFormat},
            {"input_shape", input_shape},
            {"color_mode", color_mode},
            {"transforms", transforms},
            {"preprocessing", pre},
            {"classes", classes},
            {"backbone", backbone},
            {"recipe", recipe_yaml},
            {"source", source},
            {"versions", {{"graft", GRAFT_VERSION}, {"libtorch", TORCH_VERSION}}}};
  return j.dump(2);
}

DeployInfo DeployInfo::from_json(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error::usage(source + ": graft.json is not JSON: " + e.what());
  }
  if (!j.is_object()) throw Error::usage(source + ": graft.json is not a JSON object");
  DeployInfo info;
  try {
    if (j.value("format", 0) > kInfoFormat)
      throw Error::usage(fmt::format("{}: graft.json format {} is newer than this graft reads ({})", source,
                                     j.value("format", 0), kInfoFormat));
    if (!j.contains("input_shape") || !j["input_shape"].is_array())
      throw Error::usage(source + ": graft.json has no input_shape list");
    info.input_shape = j["input_shape"].get<std::vector<std::int64_t>>();
    info.color_mode = read_text(j, "color_mode", source);
    if (!j.contains("transforms") || !j["transforms"].is_array())
      throw Error::usage(source + ": graft.json has no transforms list");
    info.transforms_json = j["transforms"].dump();
    info.classes = j.value("classes", std::vector<std::string>{});
    info.backbone = j.value("backbone", "");
    info.recipe_yaml = j.value("recipe", "");
    info.source = j.value("source", "");
  } catch (const json::exception& e) {
    throw Error::usage(source + ": graft.json: " + e.what());
  }
  return info;
}

// ---- the module ----------------------------------------------------------------------

ScriptModel ScriptModel::trace(torch::nn::AnyModule& model, const std::vector<std::int64_t>& sample_shape) {
  auto& m = *model.ptr();
  for (const auto& p : m.parameters())
    if (!p.device().is_cpu()) throw Error::runtime("tracing needs the model on the CPU, found a tensor on " + p.device().str());
  const bool was_training = m.is_training();
  m.eval();
  torch::NoGradGuard no_grad;
  const auto a = probe(2, sample_shape, 1), b = probe(3, sample_shape, 2);
  ScriptModel out;
  try {
    out.module_ = std::make_shared<torch::jit::Module>(trace_raw(model, a));
  } catch (const std::exception& e) {
    m.train(was_training);
    throw Error::usage("the model cannot be traced on a " + shape_str(a.sizes()) + " input: " + error_line(e));
  }
  const auto [path, why] = locate(model, a, b, "");
  m.train(was_training);
  if (!why.empty()) {
    auto* at = path.empty() ? &m : m.named_modules("", false)[path].get();
    throw Error::usage(fmt::format(
        "{} ({}) cannot be exported as a trace: {}; its forward reads a size or a value of the data "
        "(x.size(0), .item(), a branch on values), which a trace fixes: write it with batch-independent "
        "ops (flatten, view with -1)",
        path.empty() ? "the model" : "module '" + path + "'", type_name(*at), why));
  }
  return out;
}

ScriptModel ScriptModel::load(const std::string& path, DeployInfo* info) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw Error::usage(path + ": no such file");
  torch::jit::ExtraFilesMap extra{{kInfoFile, ""}};
  ScriptModel out;
  try {
    out.module_ = std::make_shared<torch::jit::Module>(torch::jit::load(path, torch::kCPU, extra));
  } catch (const std::exception& e) {
    throw Error::usage(path + ": not a TorchScript file graft can load: " + error_line(e));
  }
  if (info) {
    if (extra[kInfoFile].empty())
      throw Error::usage(path + ": a TorchScript file without graft.json (export it with graft export --format torchscript)");
    *info = DeployInfo::from_json(extra[kInfoFile], path);
  }
  out.module_->eval();
  return out;
}

void ScriptModel::save(const std::string& path, const DeployInfo& info) const {
  if (optimized_) throw Error::runtime("an optimized module cannot be saved (LibTorch cannot load it back)");
  const fs::path target(path);
  if (target.has_parent_path() && !fs::is_directory(target.parent_path()))
    throw Error::usage(path + ": the directory " + target.parent_path().string() + " does not exist");
  const std::string tmp = path + ".tmp";
  try {
    module_->save(tmp, {{kInfoFile, info.to_json()}});
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw Error::runtime(path + ": cannot write: " + error_line(e));
  }
  fs::rename(tmp, target);
}

void ScriptModel::optimize() {
  if (optimized_) return;
  module_->eval();
  auto frozen = torch::jit::freeze(*module_);
  module_ = std::make_shared<torch::jit::Module>(torch::jit::optimize_for_inference(frozen));
  optimized_ = true;
}

std::vector<std::pair<std::string, torch::Tensor>> ScriptModel::named_tensors() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : module_->named_parameters(/*recurse=*/true)) out.emplace_back(p.name, p.value);
  for (const auto& b : module_->named_buffers(/*recurse=*/true)) out.emplace_back(b.name, b.value);
  return out;
}

torch::Tensor ScriptModel::forward(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  return module_->forward({x}).toTensor();
}

}  // namespace graft
