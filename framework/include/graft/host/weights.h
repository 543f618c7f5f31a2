// Pretrained weights: where they come from (a path, `torchvision:NAME` in torch's hub
// cache, an http(s) URL downloaded into that cache with a hash check), how their keys map
// onto the model, and what loading them did (the report). Pure functions first.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "graft/config.h"
#include "graft/host/serialize.h"

namespace graft {

// ---- sources ---------------------------------------------------------------------------

/// torch's hub checkpoint cache: $TORCH_HOME/hub/checkpoints, TORCH_HOME defaulting to
/// $XDG_CACHE_HOME/torch or ~/.cache/torch (as torch.hub).
std::string torch_hub_dir();

/// torchvision's published file name for a model's ImageNet weights (IMAGENET1K_V1, what
/// `pretrained=True` loads): "resnet18" -> "resnet18-f37072fd.pth"; nullopt if unknown.
std::optional<std::string> torchvision_file(const std::string& model);
std::vector<std::string> torchvision_models();

/// What torchvision publishes with a model's ImageNet weights (IMAGENET1K_V1): the
/// evaluation preprocessing (resize the shorter side, bilinear with antialiasing, center
/// crop, ImageNet mean and std) and the 1000 category names.
struct PretrainedMeta {
  std::string model;
  std::int64_t resize = 256, crop = 224;
  std::vector<double> mean{0.485, 0.456, 0.406}, std{0.229, 0.224, 0.225};
  /// The preprocessing as graft's evaluation transforms (a YAML list).
  std::string transforms_yaml() const;
  /// "resize 256 / crop 224 / bilinear antialias / mean [...] / std [...]"
  std::string describe() const;
};
/// The metadata of `torchvision:NAME` weights; nullopt for a model torchvision does not publish.
std::optional<PretrainedMeta> torchvision_meta(const std::string& model);
/// The torchvision model whose published weights a recipe's `model.weights` loads
/// (`torchvision:resnet18`, or a map with `from: torchvision:resnet18` -> "resnet18"), or "".
std::string torchvision_model_of(const Config& recipe_root);
/// ImageNet-1k's category names, position = class index, as torchvision's weights' meta.
const std::vector<std::string>& imagenet_categories();

/// The sha256 prefix in a published file name ("resnet18-f37072fd.pth" -> "f37072fd"), as
/// torch.hub's HASH_REGEX finds it; "" when the name has none.
std::string hash_prefix_of(const std::string& file_name);

/// A local path for a weights source: a path as it is; `torchvision:NAME` in the hub cache
/// (downloaded from torchvision's site, or $GRAFT_TORCHVISION_URL, when missing); an
/// http(s) URL in the hub cache (downloaded when missing). With GRAFT_OFFLINE=1 nothing is
/// downloaded: a missing file is an error saying where graft looked and how to get it.
std::string resolve_weights(const std::string& source);

// ---- key mapping and loading -----------------------------------------------------------

struct KeyMapping {
  std::string strip_prefix;   ///< removed from keys that start with it ("module.")
  std::string add_prefix;     ///< prepended to every key
  std::vector<std::pair<std::string, std::string>> rename;  ///< ECMAScript regex -> replacement, in order
  std::vector<std::string> exclude;  ///< glob patterns (* ? [..]) of keys to drop, matched after mapping
};

/// Applies a mapping to a file's keys (pure). Keys mapped onto the same name are an error.
StateDict map_keys(const StateDict& weights, const KeyMapping& mapping);

struct ShapeMismatch {
  std::string key;
  std::vector<std::int64_t> model_shape, file_shape;
};

struct LoadReport {
  std::string file;
  std::vector<std::string> loaded;      ///< model keys filled from the file
  std::vector<std::string> missing;     ///< model keys the file lacks
  std::vector<std::string> unexpected;  ///< file keys the model lacks
  std::vector<ShapeMismatch> mismatched;
  std::vector<std::string> defaulted;   ///< BatchNorm counters absent from old files, left at 0
  std::vector<std::pair<std::string, std::string>> renamed;  ///< legacy key fixes (file key -> model key)

  bool clean() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  /// The table printed by check/inspect.
  std::string table() const;
  /// One line: "N loaded, N missing (a, b, ...), ...".
  std::string summary() const;
};

/// Copies `weights` into the model's parameters and buffers by name. Legacy key forms
/// (densenet's `norm.1` for `norm1`) are fixed as torchvision does. With `strict`, any
/// missing, unexpected or shape-mismatched key fails (usage error naming the file) and
/// nothing is loaded; otherwise what matches is loaded and the rest reported.
LoadReport load_weights(torch::nn::Module& model, const StateDict& weights, bool strict, const std::string& file);

/// The `weights:` node of a recipe: a source string, or a map with `from:` plus strict,
/// strip_prefix, add_prefix, rename, exclude.
struct WeightsSpec {
  std::string source;
  bool strict = true;
  KeyMapping mapping;
};
const Schema& weights_schema();
WeightsSpec parse_weights_spec(const Config& node);

}  // namespace graft
