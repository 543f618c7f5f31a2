#include "settings.h"

#include <fmt/format.h>
#include <torch/cuda.h>

#include "graft/host/check.h"
#include "graft/host/runtime.h"
#include "train/parallel.h"

namespace graft::train {

namespace {

c10::Device parse_device(const Config& at, const std::string& text) {
  if (text == "cpu") return c10::kCPU;
  if (text == "cuda" || text.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available())
      at.fail("'" + text + "' asked for, but this " + (GRAFT_HAS_CUDA ? "machine has no CUDA device" : "graft was built without CUDA"));
    c10::Device d = text == "cuda" ? c10::Device(c10::kCUDA, 0) : c10::Device(text);
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
    d.all.push_back(text == "auto" ? (torch::cuda::is_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU))
                                   : parse_device(node, text));
  }
  d.main = d.all.front();
  return d;
}

std::optional<double> optional_number(const Config& tr, const std::string& key) {
  return tr[key].is_null() ? std::nullopt : std::optional<double>(tr.get<double>(key));
}

}  // namespace

Settings Settings::parse(const Recipe& recipe) {
  Settings s;
  const Config raw = recipe.root["trainer"].is_null() ? parse_yaml_text("{}", "trainer") : recipe.root["trainer"];
  const Config tr = raw.validated(trainer_schema(), "trainer");
  s.node = tr;
  s.epochs = tr.get<std::int64_t>("epochs");
  s.max_steps = tr.get<std::int64_t>("max_steps");
  s.val_every = tr.get<std::int64_t>("val_every");
  s.log_every = tr.get<std::int64_t>("log_every");
  s.accumulate = tr.get<std::int64_t>("accumulate");
  s.clip_norm = optional_number(tr, "clip_grad_norm");
  s.clip_value = optional_number(tr, "clip_grad_value");
  if (s.clip_norm && s.clip_value) tr["clip_grad_value"].fail("set clip_grad_norm or clip_grad_value, not both");
  s.devices = resolve_devices(tr["device"]);
  s.threads = resolve_threads(tr["threads"]);
  if (!tr["amp"].is_null()) {
    const std::string a = tr.get<std::string>("amp");
    if (a != "none") {
      if (!s.devices.main.is_cuda()) tr["amp"].fail("mixed precision needs a CUDA device (trainer.device)");
      s.amp.on = true;
      s.amp.dtype = a == "bf16" ? c10::kBFloat16 : c10::kHalf;
      s.amp.scaling = a == "fp16";
    }
  }
  s.channels_last = tr.get<bool>("channels_last");
  s.dist_backend = tr.get<std::string>("dist_backend");
  s.bucket_mb = tr.get<double>("bucket_mb");
  s.test = tr.get<bool>("test");
  s.stop_on_nan = tr.get<bool>("stop_on_nan");
  s.run_dir = tr.get<std::string>("run_dir");
  return s;
}

}  // namespace graft::train
