#include "session.h"

#include <torch/torch.h>

#include "graft/log.h"

namespace graft::train {

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

std::vector<std::shared_ptr<Metric>> report_metrics(const Registry& registry) {
  std::vector<std::shared_ptr<Metric>> out;
  for (const char* name : {"per_class_accuracy", "confusion_matrix"})
    if (registry.find(Kind::metric, name)) out.push_back(registry.create<Kind::metric>(parse_yaml_text(name, "final report")));
  return out;
}

Session::Session(const Recipe& r, const Registry& reg) : recipe(r), registry(reg), settings(Settings::parse(r)) {}

void Session::join(const dist::Env& env) {
  if (settings.devices.all.size() > 1)
    settings.node["device"].fail("a list of devices (DataParallel) and several processes exclude each other: each rank uses one device");
  if (settings.devices.main.is_cuda())
    settings.devices.main = settings.devices.all.front() = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
  sync = GroupSync(dist::Group::connect(env, settings.dist_backend, settings.devices.main.is_cuda()));
  log::info("joined the {} process group: {} at {}:{}", sync.group()->backend(), env.who(), env.master_addr, env.master_port);
}

void Session::build(const std::string& only_split) {
  built = build_model(recipe, registry);
  model().to(settings.devices.main);
  if (settings.channels_last) {
    torch::NoGradGuard no_grad;
    for (auto& p : model().parameters())
      if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
  }
  if (recipe.root["data"].is_null()) {  // a model alone (graft check)
    metrics = make_metrics(recipe, registry);
    return;
  }
  data = build_data(recipe, registry, only_split);
  if (sync.active()) {
    data.train_options.rank = data.eval_options.rank = sync.rank();
    data.train_options.world = data.eval_options.world = sync.world();
    data.eval_options.pad = false;  // every evaluated sample once
  }
  const Config l = recipe.root["loss"];
  loss = registry.create<Kind::loss>(l.is_null() ? parse_yaml_text("cross_entropy", "default loss") : l);
  metrics = make_metrics(recipe, registry);
}

void Session::start_execution() { execution_ = make_execution(built.module, settings, sync.group()); }

PassResult Session::evaluate_pass(const std::shared_ptr<Dataset>& dataset, const std::string& split,
                                  const std::vector<std::shared_ptr<Metric>>& extra,
                                  const std::function<torch::Tensor(const torch::Tensor&)>& forward) {
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
    const auto x = execution_->to_device(batch->inputs), y = execution_->to_device(batch->targets);
    const auto out = (forward ? forward(x) : execution_->forward(x)).to(torch::kFloat);
    const auto l = loss->forward(out, y);
    loss_sum += l.item<double>() * static_cast<double>(y.size(0));
    r.samples += y.size(0);
    for (auto& m : all) m->update(out, y);
    const auto [conf, pred] = torch::softmax(out, 1).max(1);
    const auto p = pred.to(torch::kCPU).contiguous(), t = batch->targets.to(torch::kCPU).contiguous();
    const auto c = conf.to(torch::kCPU).contiguous();
    r.indices.insert(r.indices.end(), batch->indices.begin(), batch->indices.end());
    r.targets.insert(r.targets.end(), t.data_ptr<std::int64_t>(), t.data_ptr<std::int64_t>() + t.numel());
    r.predicted.insert(r.predicted.end(), p.data_ptr<std::int64_t>(), p.data_ptr<std::int64_t>() + p.numel());
    r.confidence.insert(r.confidence.end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  }
  sync.sum(loss_sum, r.samples, "summing the " + split + " loss");
  sync.merge(all, "merging the " + split + " metrics");
  sync.gather(r);
  r.metrics["loss"] = r.samples ? loss_sum / static_cast<double>(r.samples) : 0.0;
  for (auto& m : all) {
    for (const auto& [k, v] : m->compute()) r.metrics[k] = v;
    const auto text = m->report(data.classes);
    if (!text.empty()) r.report += text + (text.back() == '\n' ? "" : "\n");
  }
  model().train(was_training);
  return r;
}

}  // namespace graft::train
