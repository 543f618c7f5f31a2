#include "graft/host/weights.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include "graft/glob.h"
#include "graft/host/download.h"
#include "graft/host/sha256.h"

namespace fs = std::filesystem;

namespace graft {

// ---- sources ---------------------------------------------------------------------------

namespace {
// torchvision 0.14's IMAGENET1K_V1 files (what pretrained=True loads), checked against the
// installed torchvision by the tests.
const std::vector<std::pair<std::string, std::string>>& torchvision_table() {
  static const std::vector<std::pair<std::string, std::string>> table = {
      {"resnet18", "resnet18-f37072fd.pth"},           {"resnet34", "resnet34-b627a593.pth"},
      {"resnet50", "resnet50-0676ba61.pth"},           {"resnet101", "resnet101-63fe2227.pth"},
      {"resnet152", "resnet152-394f9c45.pth"},         {"resnext50_32x4d", "resnext50_32x4d-7cdf4587.pth"},
      {"wide_resnet50_2", "wide_resnet50_2-95faca4d.pth"}, {"vgg11", "vgg11-8a719046.pth"},
      {"vgg13", "vgg13-19584684.pth"},                 {"vgg16", "vgg16-397923af.pth"},
      {"vgg19", "vgg19-dcbb9e9d.pth"},                 {"vgg11_bn", "vgg11_bn-6002323d.pth"},
      {"vgg13_bn", "vgg13_bn-abd245e5.pth"},           {"vgg16_bn", "vgg16_bn-6c64b313.pth"},
      {"vgg19_bn", "vgg19_bn-c79401a0.pth"},           {"alexnet", "alexnet-owt-7be5be79.pth"},
      {"densenet121", "densenet121-a639ec97.pth"},     {"densenet161", "densenet161-8d451a50.pth"},
      {"densenet169", "densenet169-b2777c0a.pth"},     {"densenet201", "densenet201-c1103571.pth"},
      {"squeezenet1_0", "squeezenet1_0-b66bff10.pth"}, {"squeezenet1_1", "squeezenet1_1-b8a52dc0.pth"},
      {"mobilenet_v2", "mobilenet_v2-b0353104.pth"},   {"googlenet", "googlenet-1378be20.pth"},
      {"inception_v3", "inception_v3_google-0cc3c7bd.pth"},
  };
  return table;
}

const char* torchvision_base_url() {
  const char* env = std::getenv("GRAFT_TORCHVISION_URL");
  return env && *env ? env : "https://download.pytorch.org/models/";
}

bool offline() {
  const char* env = std::getenv("GRAFT_OFFLINE");
  return env && *env && std::string(env) != "0";
}

bool is_url(const std::string& s) { return s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0; }
}  // namespace

std::string torch_hub_dir() {
  fs::path home;
  if (const char* t = std::getenv("TORCH_HOME"); t && *t) {
    home = t;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
    home = fs::path(x) / "torch";
  } else {
    const char* h = std::getenv("HOME");
    home = fs::path(h && *h ? h : "/") / ".cache" / "torch";
  }
  return (home / "hub" / "checkpoints").string();
}

std::optional<std::string> torchvision_file(const std::string& model) {
  for (const auto& [name, file] : torchvision_table())
    if (name == model) return file;
  return std::nullopt;
}

std::optional<PretrainedMeta> torchvision_meta(const std::string& model) {
  if (!torchvision_file(model)) return std::nullopt;
  PretrainedMeta m;
  m.model = model;
  if (model == "inception_v3") m.resize = 342, m.crop = 299;
  return m;
}

std::string torchvision_model_of(const Config& recipe_root) {
  const Config w = recipe_root["model"]["weights"];
  const Config from = w.is_map() ? w["from"] : w;
  const std::string source = from.is_scalar() ? from.scalar() : "";
  return source.rfind("torchvision:", 0) == 0 ? source.substr(12) : "";
}

std::string PretrainedMeta::transforms_yaml() const {
  return fmt::format("[{{name: resize, size: {}, antialias: true}}, {{name: center_crop, size: {}}}, to_tensor, "
                     "{{name: normalize, mean: [{}], std: [{}]}}]",
                     resize, crop, fmt::join(mean, ", "), fmt::join(std, ", "));
}

std::string PretrainedMeta::describe() const {
  return fmt::format("resize {} / crop {} / bilinear antialias / mean [{}] / std [{}]", resize, crop, fmt::join(mean, ", "),
                     fmt::join(std, ", "));
}

const std::vector<std::string>& imagenet_categories() {
  static const std::vector<std::string> names = {
#include "imagenet_classes.inc"
  };
  return names;
}

std::vector<std::string> torchvision_models() {
  std::vector<std::string> out;
  for (const auto& e : torchvision_table()) out.push_back(e.first);
  return out;
}

std::string hash_prefix_of(const std::string& file_name) {
  static const std::regex hash("-([a-f0-9]*)\\.");
  std::smatch m;
  return std::regex_search(file_name, m, hash) ? m[1].str() : "";
}

std::string resolve_weights(const std::string& source) {
  if (source.empty()) throw Error::usage("weights: empty source");
  std::string url, file;
  if (source.rfind("torchvision:", 0) == 0) {
    const std::string model = source.substr(12);
    const auto name = torchvision_file(model);
    if (!name) {
      const auto known = torchvision_models();
      const std::string guess = closest_match(model, known);
      throw Error::usage("weights: unknown torchvision model '" + model + "'" +
                         (guess.empty() ? "" : " (did you mean '" + guess + "'?)") + "; known: " +
                         fmt::format("{}", fmt::join(known, ", ")));
    }
    file = *name;
    url = torchvision_base_url() + file;
  } else if (is_url(source)) {
    url = source;
    file = url.substr(url.find_last_of('/') + 1);
    file = file.substr(0, file.find_first_of("?#"));
    if (file.empty()) throw Error::usage("weights: the URL " + url + " names no file");
  } else {
    std::error_code ec;
    if (!fs::is_regular_file(source, ec))
      throw Error::usage("weights: " + source + (fs::exists(source, ec) ? " is not a file" : ": no such file"));
    return source;
  }
  const std::string cached = (fs::path(torch_hub_dir()) / file).string();
  std::error_code ec;
  if (fs::is_regular_file(cached, ec)) return cached;  // trusted once downloaded, as torch.hub
  if (offline())
    throw Error::usage("weights " + source + ": not in the cache (looked for " + cached +
                       ") and GRAFT_OFFLINE is set; download " + url + " to that path, or unset GRAFT_OFFLINE");
  try {
    download_file(url, cached, hash_prefix_of(file));
  } catch (const Error& e) {
    throw Error::runtime("weights " + source + ": " + e.message() + "; or put the file at " + cached +
                         " yourself (looked there first)");
  }
  return cached;
}

// ---- key mapping -----------------------------------------------------------------------

StateDict map_keys(const StateDict& weights, const KeyMapping& mapping) {
  std::vector<std::pair<std::regex, std::string>> rules;
  for (const auto& [pattern, replacement] : mapping.rename) {
    try {
      rules.emplace_back(std::regex(pattern), replacement);
    } catch (const std::regex_error& e) {
      throw Error::usage("weights: rename pattern '" + pattern + "' is not a valid regular expression: " + e.what());
    }
  }
  StateDict out;
  std::map<std::string, std::string> origin;
  for (const auto& item : weights) {
    std::string key = item.key();
    if (!mapping.strip_prefix.empty() && key.rfind(mapping.strip_prefix, 0) == 0) key = key.substr(mapping.strip_prefix.size());
    key = mapping.add_prefix + key;
    for (const auto& [re, replacement] : rules) key = std::regex_replace(key, re, replacement);
    if (std::any_of(mapping.exclude.begin(), mapping.exclude.end(), [&](const std::string& g) { return glob_match(g, key); }))
      continue;
    if (const auto it = origin.find(key); it != origin.end())
      throw Error::usage("weights: keys '" + it->second + "' and '" + item.key() + "' both map to '" + key + "'");
    origin[key] = item.key();
    out.insert(key, item.value());
  }
  return out;
}

// ---- loading ---------------------------------------------------------------------------

namespace {
// Legacy key forms that torchvision itself fixes when loading: densenet's published files
// say `denselayer1.norm.1.weight` for `denselayer1.norm1.weight`.
std::string legacy_fix(const std::string& key) {
  static const std::regex densenet(R"(^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$)");
  std::smatch m;
  if (std::regex_match(key, m, densenet)) return m[1].str() + m[2].str();
  return key;
}

std::string join_some(const std::vector<std::string>& keys, std::size_t limit = 4) {
  std::string s;
  for (std::size_t k = 0; k < keys.size() && k < limit; ++k) s += (k ? ", " : "") + keys[k];
  if (keys.size() > limit) s += ", ...";
  return s;
}

std::string shape_str(const std::vector<std::int64_t>& s) {
  return "[" + fmt::format("{}", fmt::join(s, ", ")) + "]";
}
}  // namespace

std::string LoadReport::summary() const {
  std::string s = fmt::format("{} loaded", loaded.size());
  s += fmt::format(", {} missing", missing.size()) + (missing.empty() ? "" : " (" + join_some(missing) + ")");
  s += fmt::format(", {} unexpected", unexpected.size()) + (unexpected.empty() ? "" : " (" + join_some(unexpected) + ")");
  s += fmt::format(", {} shape-mismatched", mismatched.size());
  if (!mismatched.empty()) {
    std::vector<std::string> m;
    for (const auto& x : mismatched) m.push_back(x.key + ": model " + shape_str(x.model_shape) + ", file " + shape_str(x.file_shape));
    s += " (" + join_some(m, 2) + ")";
  }
  return s;
}

std::string LoadReport::table() const {
  std::string s = "weights " + file + "\n";
  s += fmt::format("  {:<18} {}\n", "loaded", loaded.size());
  auto list = [&](const char* what, const std::vector<std::string>& keys) {
    s += fmt::format("  {:<18} {}\n", what, keys.size());
    for (const auto& k : keys) s += "      " + k + "\n";
  };
  list("missing", missing);
  list("unexpected", unexpected);
  s += fmt::format("  {:<18} {}\n", "shape-mismatched", mismatched.size());
  for (const auto& m : mismatched)
    s += fmt::format("      {}: model {}, file {}\n", m.key, shape_str(m.model_shape), shape_str(m.file_shape));
  if (!defaulted.empty()) s += fmt::format("  {:<18} {} (BatchNorm counters absent from the file, left at 0)\n", "defaulted", defaulted.size());
  if (!renamed.empty()) s += fmt::format("  {:<18} {} (legacy key names, mapped as torchvision does)\n", "renamed", renamed.size());
  return s;
}

LoadReport load_weights(torch::nn::Module& model, const StateDict& weights, bool strict, const std::string& file) {
  LoadReport r;
  r.file = file;
  const StateDict target = state_dict(model);
  std::set<std::string> seen;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;
  for (const auto& item : weights) {
    std::string key = item.key();
    if (!target.contains(key)) {
      const std::string fixed = legacy_fix(key);
      if (fixed != key && target.contains(fixed)) {
        r.renamed.emplace_back(key, fixed);
        key = fixed;
      }
    }
    const torch::Tensor* dst = target.find(key);
    if (!dst) {
      r.unexpected.push_back(item.key());
      continue;
    }
    seen.insert(key);
    if (dst->sizes() != item.value().sizes()) {
      r.mismatched.push_back({key, dst->sizes().vec(), item.value().sizes().vec()});
      continue;
    }
    copies.emplace_back(*dst, item.value());
    r.loaded.push_back(key);
  }
  for (const auto& item : target) {
    if (seen.count(item.key())) continue;
    const auto& k = item.key();
    const bool counter = k.size() >= 19 && k.compare(k.size() - 19, 19, "num_batches_tracked") == 0;
    (counter ? r.defaulted : r.missing).push_back(k);
  }
  if (strict && !r.clean())
    throw Error::usage("weights " + file + ": strict load failed: " + r.summary() +
                       "; fix the key mapping (strip_prefix, rename, exclude) or set strict: false");
  torch::NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst.copy_(src);
  return r;
}

// ---- recipe ----------------------------------------------------------------------------

const Schema& weights_schema() {
  static const Schema schema = {
      KeySpec::required_key("from", ValueType::string, "a .pth path, torchvision:NAME, or an http(s) URL"),
      KeySpec("strict", true, "fail unless every key matches (as load_state_dict(strict=True))"),
      KeySpec("strip_prefix", "", "removed from the file's keys that start with it (e.g. 'module.')"),
      KeySpec("add_prefix", "", "prepended to every key of the file"),
      KeySpec("rename", ValueType::section, "~", "regex -> replacement rules applied to the file's keys, in order"),
      KeySpec("exclude", std::vector<std::string>{}, "glob patterns of the file's keys to leave out"),
  };
  return schema;
}

WeightsSpec parse_weights_spec(const Config& node) {
  WeightsSpec spec;
  if (node.is_scalar()) {
    spec.source = node.as<std::string>();
    return spec;
  }
  const Config c = node.validated(weights_schema(), "weights");
  spec.source = c.get<std::string>("from");
  spec.strict = c.get<bool>("strict");
  spec.mapping.strip_prefix = c.get<std::string>("strip_prefix");
  spec.mapping.add_prefix = c.get<std::string>("add_prefix");
  spec.mapping.exclude = c.get<std::vector<std::string>>("exclude");
  const Config rename = c["rename"];
  if (rename.is_map()) {
    for (const auto& k : rename.keys()) spec.mapping.rename.emplace_back(k, rename.get<std::string>(k));
  } else if (rename.is_list()) {
    for (const auto& item : rename.items()) {
      const Config rule = item.validated({KeySpec::required_key("pattern", ValueType::string, "regex"),
                                          KeySpec::required_key("replace", ValueType::string, "replacement")},
                                         "a rename rule");
      spec.mapping.rename.emplace_back(rule.get<std::string>("pattern"), rule.get<std::string>("replace"));
    }
  }
  for (const auto& [pattern, _] : spec.mapping.rename) {
    try {
      std::regex test(pattern);
    } catch (const std::regex_error& e) {
      rename.fail("'" + pattern + "' is not a valid regular expression");
    }
  }
  return spec;
}

}  // namespace graft
