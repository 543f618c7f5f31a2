// Looking inside: `graft features` (feature maps of dotted paths, as tensors and pictures)
// and `graft report` (the HTML run report of run dirs).
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.h"
#include "graft/data.h"
#include "graft/features.h"
#include "graft/host/build.h"
#include "graft/host/data_plan.h"
#include "graft/host/png.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "graft/host/report.h"
#include "graft/host/runtime.h"
#include "graft/host/script.h"
#include "graft/host/serialize.h"
#include "graft/host/surgery.h"
#include "graft/host/weights.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace graft::cli {

namespace {

// Each channel of one image's feature map, normalised to 0..255 on its own, as tiles of a
// grid (ceil(sqrt(C)) columns, 1-pixel gaps, small maps enlarged to 24 pixels).
torch::Tensor channel_grid(torch::Tensor f) {
  f = f.to(torch::kCPU, torch::kFloat);
  if (f.dim() == 1) f = f.reshape({f.size(0), 1, 1});
  if (f.dim() == 2) f = f.unsqueeze(0);
  if (f.dim() > 3) f = f.flatten(0, f.dim() - 3);
  const auto c = f.size(0), h = f.size(1), w = f.size(2);
  const auto flat = f.reshape({c, -1});
  const auto lo = std::get<0>(flat.min(1)).view({c, 1, 1}), hi = std::get<0>(flat.max(1)).view({c, 1, 1});
  auto tiles = ((f - lo) / (hi - lo).clamp_min(1e-12)).nan_to_num(0, 0, 0);
  const std::int64_t scale = std::max<std::int64_t>(1, (24 + std::max(h, w) - 1) / std::max(h, w));
  if (scale > 1) tiles = tiles.repeat_interleave(scale, 1).repeat_interleave(scale, 2);
  const auto th = h * scale, tw = w * scale;
  const auto cols = static_cast<std::int64_t>(std::ceil(std::sqrt(static_cast<double>(c))));
  const auto rows = (c + cols - 1) / cols;
  auto grid = torch::full({rows * (th + 1) + 1, cols * (tw + 1) + 1}, 0.5f);
  for (std::int64_t k = 0; k < c; ++k) {
    const auto y = 1 + (k / cols) * (th + 1), x = 1 + (k % cols) * (tw + 1);
    grid.slice(0, y, y + th).slice(1, x, x + tw).copy_(tiles[k]);
  }
  return (grid * 255).round().to(torch::kUInt8).unsqueeze(0);
}

// A blue-to-red colour map of values in [0, 1]: (3, H, W) in [0, 1].
torch::Tensor heat(const torch::Tensor& v) {
  const auto r = (1.5 - (4 * v - 3).abs()).clamp(0, 1);
  const auto g = (1.5 - (4 * v - 2).abs()).clamp(0, 1);
  const auto b = (1.5 - (4 * v - 1).abs()).clamp(0, 1);
  return torch::stack({r, g, b});
}

// The mean over channels of one image's feature map, as a heat map over the image.
torch::Tensor overlay(const torch::Tensor& f, const torch::Tensor& image) {
  auto m = f.to(torch::kCPU, torch::kFloat).mean(0);
  m = (m - m.min()) / (m.max() - m.min()).clamp_min(1e-12);
  namespace F = torch::nn::functional;
  m = F::interpolate(m.unsqueeze(0).unsqueeze(0), F::InterpolateFuncOptions()
                                                     .size(std::vector<std::int64_t>{image.size(1), image.size(2)})
                                                     .mode(torch::kBilinear)
                                                     .align_corners(false))
          .squeeze(0).squeeze(0).clamp(0, 1);
  auto base = image.to(torch::kFloat) / 255;
  if (base.size(0) == 1) base = base.expand({3, base.size(1), base.size(2)});
  return ((0.5 * base + 0.5 * heat(m)) * 255).round().clamp(0, 255).to(torch::kUInt8);
}

// The image resized to (h, w) (bilinear, as uint8).
torch::Tensor resized(const torch::Tensor& image, std::int64_t h, std::int64_t w) {
  if (image.size(1) == h && image.size(2) == w) return image;
  namespace F = torch::nn::functional;
  return F::interpolate(image.unsqueeze(0).to(torch::kFloat),
                        F::InterpolateFuncOptions().size(std::vector<std::int64_t>{h, w}).mode(torch::kBilinear).align_corners(false))
      .squeeze(0).round().clamp(0, 255).to(torch::kUInt8);
}

std::string safe_name(std::string s) {
  for (auto& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '-' && ch != '_') ch = '_';
  return s;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : c == '"' ? "&quot;" : std::string(1, c);
  return out;
}

std::string shape_text(const torch::Tensor& t) { return fmt::format("[{}]", fmt::join(t.sizes(), ", ")); }

}  // namespace

int cmd_features(const FeaturesArgs& args) {
  if (args.layers.empty()) throw Error::usage("--layers: give at least one dotted path (e.g. --layers layer3,layer4.1.conv2)");
  if (args.images.empty()) throw Error::usage("graft features: give at least one image file");
  // RECIPE [--checkpoint CKPT], or an exported MODEL.pt: its graft.json's recipe rebuilds
  // the model, which takes the file's weights (a TorchScript module has no taps of its own)
  const bool exported = !is_recipe_path(args.recipe);
  Registry registry;
  registry.scan(Registry::default_search_path());
  Recipe recipe;
  DeployInfo info;
  std::optional<ScriptModel> script;
  if (exported) {
    if (!args.checkpoint.empty()) throw Error::usage("--checkpoint: only with a recipe (" + args.recipe + " is a model file)");
    if (!args.overrides.empty()) throw Error::usage("--set: only with a recipe");
    script = ScriptModel::load(args.recipe, &info);
    if (info.recipe_yaml.empty()) throw Error::usage(args.recipe + ": its graft.json holds no recipe to rebuild the model from");
    recipe.file = args.recipe;
    recipe.sources = {args.recipe};
    recipe.root = merge(parse_yaml_text(info.recipe_yaml, args.recipe + " (graft.json's recipe)"),
                        parse_yaml_text("model: {weights: ~}", args.recipe));
  } else {
    recipe = load_recipe(args.recipe, args.overrides);
    registry.scan(recipe.plugin_paths, Registry::Source::recipe);
  }
  configure_cpu(resolve_threads(recipe.root["trainer"]["threads"]));
  if (!args.checkpoint.empty()) {
    if (!fs::exists(args.checkpoint)) throw Error::usage("--checkpoint " + args.checkpoint + ": no such file");
    // the checkpoint holds every weight: the recipe's pretrained source is not read
    recipe.root = merge(recipe.root, parse_yaml_text("model: {weights: ~}", "--checkpoint"));
  }
  BuiltModel built = build_model(recipe, registry);
  auto& model = *built.module.ptr();
  if (script) {
    StateDict weights;
    for (const auto& [name, t] : script->named_tensors()) weights.insert(name, t);
    const LoadReport r = load_weights(model, weights, /*strict=*/false, args.recipe);
    if (!r.clean()) throw Error::usage(fmt::format("{}: does not fit the model of its graft.json: {}", args.recipe, r.summary()));
  } else if (!args.checkpoint.empty()) {
    const LoadReport r = load_weights(model, load_state_dict(args.checkpoint), /*strict=*/false, args.checkpoint);
    if (!r.clean()) throw Error::usage(fmt::format("{}: does not fit the recipe's model: {}", args.checkpoint, r.summary()));
  } else if (!built.weights) {
    std::cerr << "note: no --checkpoint and no model.weights in the recipe: the features are those of an untrained model\n";
  }
  model.eval();
  for (const auto& layer : args.layers) module_at(model, layer);  // a wrong path fails before any image is read

  // the images, decoded by the image_files dataset plugin, fitted to the model's input
  std::vector<std::int64_t> input = built.input_shape;
  std::vector<std::shared_ptr<Transform>> transforms;
  if (exported) {
    transforms = build_transforms(registry, parse_yaml_text(info.transforms_json, args.recipe + " (graft.json's transforms)"));
    input = info.input_shape;
  } else if (!recipe.root["data"].is_null()) {
    DataPlan plan = build_data(recipe, registry);
    transforms = plan.eval_transforms;
    if (plan.sample_shape.size() == 3) input = plan.sample_shape;
  } else {
    transforms.push_back(registry.create<Kind::transform>(parse_yaml_text("to_tensor", "graft features")));
  }
  const json spec = {{"name", "image_files"}, {"files", args.images}, {"mode", input.at(0) == 1 ? "gray" : "rgb"}};
  const auto source = registry.create<Kind::dataset>(parse_yaml_text(spec.dump(), "graft features"));
  const auto images = source->open(source->splits().at(0));
  std::vector<torch::Tensor> shown, batch;
  for (std::int64_t i = 0; i < images->size(); ++i) {
    torch::Tensor raw = images->get(i).input;
    std::vector<std::int64_t> out = raw.sizes().vec();
    for (const auto& t : transforms) out = t->output_shape(out);
    if (out.size() == 3 && (out[1] != input[1] || out[2] != input[2])) raw = resized(raw, input[1], input[2]);
    Rng rng(0);
    torch::Tensor x = raw;
    for (const auto& t : transforms) x = t->apply(x, rng);
    if (x.sizes().vec() != input)
      throw Error::usage(fmt::format("{}: becomes {} through the recipe's evaluation transforms; the model takes [{}]",
                                     args.images[static_cast<std::size_t>(i)], shape_text(x), fmt::join(input, ", ")));
    shown.push_back(raw.size(1) == input[1] && raw.size(2) == input[2] ? raw : resized(raw, input[1], input[2]));
    batch.push_back(x.to(torch::kFloat));
  }

  const auto features = extract_features(built.module, torch::stack(batch), args.layers);

  const fs::path out(args.out);
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) throw Error::usage(args.out + ": cannot create: " + ec.message());
  StateDict saved;
  for (const auto& layer : args.layers) saved.insert(layer, features.at(layer).to(torch::kCPU).contiguous());
  save_state_dict(saved, (out / "features.pth").string());

  std::string rows;
  for (std::size_t i = 0; i < args.images.size(); ++i) {
    const std::string stem = fmt::format("{}-{}", i, safe_name(fs::path(args.images[i]).stem().string()));
    fs::create_directories(out / stem);
    write_png(shown[i], (out / stem / "input.png").string());
    rows += fmt::format("<section class=\"image\"><h2>{}</h2><figure><img src=\"{}/input.png\" alt=\"input\" class=\"input\">"
                        "<figcaption>as the model sees it: [{}]</figcaption></figure>\n",
                        html_escape(args.images[i]), stem, fmt::join(input, ", "));
    for (const auto& layer : args.layers) {
      const auto f = features.at(layer)[static_cast<std::int64_t>(i)];
      const std::string name = safe_name(layer);
      write_png(channel_grid(f), (out / stem / (name + ".png")).string());
      const bool spatial = f.dim() == 3;
      if (spatial) write_png(overlay(f, shown[i]), (out / stem / (name + "_overlay.png")).string());
      rows += fmt::format("<div class=\"layer\" data-layer=\"{}\"><h3>{} <span class=\"shape\">{}</span></h3>"
                          "<img src=\"{}/{}.png\" alt=\"channels of {}\" class=\"grid\">{}</div>\n",
                          html_escape(layer), html_escape(layer), shape_text(features.at(layer)), stem, name, html_escape(layer),
                          spatial ? fmt::format("<img src=\"{}/{}_overlay.png\" alt=\"channel mean of {}\" class=\"overlay\">", stem, name,
                                                html_escape(layer))
                                  : std::string());
    }
    rows += "</section>\n";
  }
  std::ofstream index(out / "index.html");
  index << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>graft features: " << html_escape(args.recipe)
        << "</title>\n<script>window.graftErrors=[];window.addEventListener('error',function(e){graftErrors.push(String(e.message));"
           "document.documentElement.dataset.errors=graftErrors.join(' | ');});</script>\n"
           "<style>body{font:14px system-ui,sans-serif;margin:1.5em}img{image-rendering:pixelated;margin:4px;border:1px solid #ccc;"
           "vertical-align:top}img.input,img.overlay{width:224px}img.grid{min-width:320px;max-width:900px}.shape{color:#666;font-weight:normal}</style>"
           "</head><body>\n<h1>Feature maps</h1>\n<p>recipe <code>"
        << html_escape(args.recipe) << "</code>" << (args.checkpoint.empty() ? "" : ", checkpoint <code>" + html_escape(args.checkpoint) + "</code>")
        << "; one tile per channel, each normalised to its own range; the overlay is the mean over channels on the input. "
           "Tensors: <code>features.pth</code> ({layer: [N, ...]}, torch.load).</p>\n"
        << rows
        << "<script>window.addEventListener('load',function(){var ok=0,bad=0;document.querySelectorAll('img').forEach(function(i){"
           "if(i.complete&&i.naturalWidth>0)ok++;else bad++;});document.body.dataset.imagesLoaded=ok;document.body.dataset.imagesBroken=bad;});"
           "</script>\n</body></html>\n";
  if (!index.flush()) throw Error::runtime((out / "index.html").string() + ": cannot write");
  for (const auto& layer : args.layers) std::cout << fmt::format("{:<24} {}\n", layer, shape_text(features.at(layer)));
  std::cerr << "wrote " << (out / "features.pth").string() << " and " << (out / "index.html").string() << "\n";
  return 0;
}

int cmd_report(const ReportArgs& args) {
  const std::string out =
      !args.out.empty() ? args.out : args.run_dirs.size() == 1 ? (fs::path(args.run_dirs[0]) / "report.html").string() : "report.html";
  write_report(args.run_dirs, out);
  std::cerr << "wrote " << out << "\n";
  return 0;
}

}  // namespace graft::cli
