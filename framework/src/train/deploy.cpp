#include "graft/host/deploy.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>

#include "graft/host/data_plan.h"
#include "graft/host/serialize.h"
#include "graft/host/weights.h"
#include "graft/log.h"
#include "train_state.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace graft {

namespace {

std::string shape_str(const std::vector<std::int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

/// A recipe value as JSON: YAML scalars typed as YAML reads them (int, float, bool, null).
json to_json(const Config& c) {
  if (c.is_null()) return nullptr;
  if (c.is_list()) {
    json out = json::array();
    for (const auto& item : c.items()) out.push_back(to_json(item));
    return out;
  }
  if (c.is_map()) {
    json out = json::object();
    for (const auto& k : c.keys()) out[k] = to_json(c[k]);
    return out;
  }
  const std::string text = c.scalar();
  if (text == "true" || text == "false") return text == "true";
  char* end = nullptr;
  const long long i = std::strtoll(text.c_str(), &end, 10);
  if (!text.empty() && end == text.c_str() + text.size()) return static_cast<std::int64_t>(i);
  const double d = std::strtod(text.c_str(), &end);
  if (!text.empty() && end == text.c_str() + text.size()) return d;
  return text;
}

/// A checkpoint's own recipe, with its `plugins:` resolved against the recipe file's folder.
Recipe recipe_of(const train::Checkpoint& c) {
  Recipe r;
  r.file = c.recipe_file().empty() ? c.path() : c.recipe_file();
  r.sources = {r.file};
  r.root = parse_yaml_text(c.recipe_yaml(), c.path() + " (its recipe)");
  const Config plugins = r.root["plugins"];
  if (plugins.is_list())
    for (const auto& p : plugins.items()) {
      fs::path path(p.scalar());
      if (path.is_relative()) path = fs::path(r.file).parent_path() / path;
      r.plugin_paths.push_back(path.string());
    }
  return r;
}

std::string color_mode_of(const Recipe& r) {
  const Config d = r.root["data"]["dataset"];
  return d.is_map() && d.has("mode") ? d["mode"].scalar() : "keep";
}

}  // namespace

TrainedModel load_trained(const std::string& path, const Recipe* given, Registry& registry) {
  if (!fs::is_regular_file(path)) throw Error::usage(path + ": no such file");
  const c10::IValue root = read_torch_file(path);
  std::optional<train::Checkpoint> checkpoint;
  if (train::Checkpoint::is_checkpoint(root)) checkpoint = train::Checkpoint::from(path, root);
  TrainedModel m;
  if (given) {
    m.recipe = *given;
  } else if (checkpoint) {
    m.recipe = recipe_of(*checkpoint);
    registry.scan(m.recipe.plugin_paths, Registry::Source::recipe);
  } else {
    throw Error::usage(path + ": a plain state dict holds no recipe; give the recipe it was trained with (--recipe FILE)");
  }
  // the checkpoint holds every weight: the recipe's pretrained source is not needed
  m.recipe.root = expand_pretrained_transforms(m.recipe.root);
  Recipe bare = m.recipe;
  bare.root = merge(m.recipe.root, parse_yaml_text("model: {weights: ~}", "graft (weights from " + path + ")"));
  m.built = build_model(bare, registry);
  auto& module = *m.built.module.ptr();
  const StateDict weights = checkpoint ? checkpoint->weights() : state_dict_in(root, path);
  const LoadReport r = load_weights(module, weights, /*strict=*/false, path);
  if (!r.clean()) throw Error::usage(fmt::format("{}: does not fit the recipe's model: {}", path, r.summary()));
  module.eval();

  DeployInfo& info = m.info;
  info.backbone = m.built.backbone;
  info.recipe_yaml = m.recipe.root.to_yaml();
  info.source = path;
  info.color_mode = color_mode_of(m.recipe);
  const std::string tv = torchvision_model_of(m.recipe.root);
  const auto meta = tv.empty() ? std::nullopt : torchvision_meta(tv);
  json transforms = json::array();
  const bool has_data = !m.recipe.root["data"].is_null();
  if (has_data) {
    for (const auto& spec : eval_transform_specs(m.recipe, registry)) transforms.push_back(to_json(spec));
  } else if (meta) {
    transforms = to_json(parse_yaml_text(meta->transforms_yaml(), "torchvision:" + tv));
  } else {
    transforms.push_back("to_tensor");
  }
  info.transforms_json = transforms.dump();
  if (checkpoint && !checkpoint->sample_shape().empty()) {
    info.input_shape = checkpoint->sample_shape();
    info.classes = checkpoint->classes();
  } else if (has_data) {
    const DataPlan data = build_data(m.recipe, registry, "test");
    info.input_shape = data.sample_shape;
    info.classes = data.classes;
  } else {
    info.input_shape = meta ? std::vector<std::int64_t>{3, meta->crop, meta->crop} : m.built.input_shape;
  }
  // names for every output: the data's, or ImageNet's for a torchvision head left as published
  std::int64_t outputs = 0;
  {
    torch::NoGradGuard no_grad;
    std::vector<std::int64_t> shape{1};
    shape.insert(shape.end(), info.input_shape.begin(), info.input_shape.end());
    outputs = m.built.module.forward(torch::zeros(shape)).size(-1);
  }
  if (static_cast<std::int64_t>(info.classes.size()) != outputs) {
    if (meta && outputs == static_cast<std::int64_t>(imagenet_categories().size())) {
      info.classes = imagenet_categories();
    } else {
      if (!info.classes.empty())
        log::warn("{}: {} class names for a model with {} outputs: classes are named by their index", path,
                  info.classes.size(), outputs);
      info.classes.clear();
    }
  }
  return m;
}

void export_torchscript(TrainedModel& model, const std::string& out) {
  ScriptModel::trace(model.built.module, model.info.input_shape).save(out, model.info);
}

std::vector<std::string> image_files(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  for (const auto& p : paths) {
    std::error_code ec;
    if (!fs::is_directory(p, ec)) {
      out.push_back(p);
      continue;
    }
    std::vector<std::string> found;
    for (fs::recursive_directory_iterator it(p, fs::directory_options::follow_directory_symlink, ec), end; !ec && it != end;
         it.increment(ec)) {
      std::string ext = it->path().extension().string();
      for (auto& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (it->is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg")) found.push_back(it->path().string());
    }
    if (ec) throw Error::usage(p + ": cannot list: " + ec.message());
    if (found.empty()) throw Error::usage(p + ": no .png, .jpg or .jpeg images in this directory");
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

Predictor::Predictor(DeployInfo info, const Registry& registry, Forward forward)
    : info_(std::move(info)), registry_(registry), forward_(std::move(forward)) {
  const Config list = parse_yaml_text(info_.transforms_json, "the evaluation transforms of the model");
  for (const auto& spec : list.items()) names_.push_back(Registry::spec_name(spec));
  transforms_ = build_transforms(registry_, list);
  if (info_.input_shape.size() != 3)
    throw Error::usage("the model's input shape " + shape_str(info_.input_shape) + " is not one image (C, H, W)");
}

torch::Tensor Predictor::prepare(const Dataset& files, std::int64_t index, const std::string& file) const {
  torch::Tensor x;
  try {
    x = files.get(index).input;
  } catch (const Error& e) {
    const std::string msg = e.message();
    throw Error::usage(msg.rfind(file, 0) == 0 ? msg : file + ": " + msg);
  }
  if (x.size(0) != info_.input_shape[0])
    throw Error::usage(fmt::format("{}: an image with {} channel{}; the model takes {}", file, x.size(0),
                                   x.size(0) == 1 ? "" : "s", info_.input_shape[0]));
  Rng rng(0);  // evaluation transforms draw nothing
  for (std::size_t i = 0; i < transforms_.size(); ++i) {
    if (names_[i] == "center_crop") {
      const auto want = transforms_[i]->output_shape(x.sizes().vec());
      if (x.size(1) < want[1] || x.size(2) < want[2])
        throw Error::usage(fmt::format("{}: {}x{} pixels{} is smaller than the {}x{} center crop", file, x.size(1), x.size(2),
                                       i ? " after the transforms before it" : "", want[1], want[2]));
    }
    try {
      x = transforms_[i]->apply(x, rng);
    } catch (const Error& e) {
      throw Error::usage(file + ": " + names_[i] + ": " + e.message());
    }
  }
  if (x.sizes().vec() != info_.input_shape)
    throw Error::usage(fmt::format("{}: {} after the evaluation transforms; the model takes {}", file,
                                   shape_str(x.sizes().vec()), shape_str(info_.input_shape)));
  return x;
}

std::vector<Prediction> Predictor::run(const std::vector<std::string>& files, const PredictOptions& o) const {
  // The files that exist are decoded through the image_files dataset plugin; the others are
  // reported in their place.
  std::vector<std::string> present;
  std::vector<std::int64_t> at_index(files.size(), -1);
  for (std::size_t i = 0; i < files.size(); ++i) {
    std::error_code ec;
    if (!fs::is_regular_file(files[i], ec)) continue;
    at_index[i] = static_cast<std::int64_t>(present.size());
    present.push_back(files[i]);
  }
  std::shared_ptr<Dataset> data;
  if (!present.empty()) {
    const json spec = {{"name", "image_files"}, {"files", present}, {"mode", info_.color_mode}};
    const auto source = registry_.create<Kind::dataset>(parse_yaml_text(spec.dump(), "graft predict"));
    data = source->open(source->splits().at(0));
  }
  const auto n = static_cast<std::int64_t>(files.size());
  std::vector<Prediction> out(files.size());
  for (std::int64_t start = 0; start < n; start += o.batch_size) {
    const std::int64_t end = std::min(n, start + o.batch_size);
    std::vector<torch::Tensor> inputs(static_cast<std::size_t>(end - start));
    at::parallel_for(start, end, 1, [&](std::int64_t a, std::int64_t b) {
      for (std::int64_t i = a; i < b; ++i) {
        auto& p = out[static_cast<std::size_t>(i)];
        p.file = files[static_cast<std::size_t>(i)];
        try {
          const auto k = at_index[static_cast<std::size_t>(i)];
          if (k < 0) throw Error::usage(p.file + ": no such file");
          inputs[static_cast<std::size_t>(i - start)] = prepare(*data, k, p.file);
        } catch (const std::exception& e) {
          p.error = e.what();
        }
      }
    });
    std::vector<torch::Tensor> good;
    std::vector<std::size_t> at;
    for (std::int64_t i = start; i < end; ++i) {
      const auto& p = out[static_cast<std::size_t>(i)];
      if (!p.error.empty()) {
        if (!o.keep_going) throw Error::usage(p.error);
        continue;
      }
      good.push_back(inputs[static_cast<std::size_t>(i - start)]);
      at.push_back(static_cast<std::size_t>(i));
    }
    if (!good.empty()) {
      const auto probs = torch::softmax(forward_(torch::stack(good)).to(torch::kFloat), 1);
      const auto k = std::min<std::int64_t>(o.topk, probs.size(1));
      const auto [values, indices] = probs.topk(k, 1);
      for (std::size_t j = 0; j < at.size(); ++j)
        for (std::int64_t c = 0; c < k; ++c) {
          const auto index = indices[static_cast<std::int64_t>(j)][c].item<std::int64_t>();
          const auto name = index < static_cast<std::int64_t>(info_.classes.size())
                                ? info_.classes[static_cast<std::size_t>(index)]
                                : std::to_string(index);
          out[at[j]].top.push_back({index, name, values[static_cast<std::int64_t>(j)][c].item<double>()});
        }
    }
    if (o.progress) o.progress(end, n);
  }
  return out;
}

}  // namespace graft
