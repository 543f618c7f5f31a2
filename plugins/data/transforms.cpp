// Transform plugins on one (C, H, W) image, named and keyed as torchvision.transforms. The
// geometry is in image_ops.cpp; random draws come only from the Rng the loader passes,
// in a fixed order documented on each transform.
#include <torch/types.h>

#include <algorithm>
#include <array>
#include <cmath>

#include <graft/data.h>

#include "image_ops.h"

namespace {

using graft::Config;
using graft::Error;
using graft::Rng;
using graft::Transform;
using Shape = std::vector<std::int64_t>;
using namespace graft::data;

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

void need_chw(const char* name, const torch::Tensor& x) {
  if (x.dim() != 3) throw Error::usage(std::string(name) + ": expected an image (C, H, W), got " + shape_str(x.sizes().vec()));
}

/// A crop size: an int (square) or [h, w] ([s] also square).
std::pair<std::int64_t, std::int64_t> size_hw(const Config& c, const std::string& key) {
  const Config n = c[key];
  Shape v = n.is_list() ? n.as<Shape>() : Shape{n.as<std::int64_t>()};
  if (v.size() == 1) v.push_back(v[0]);
  if (v.size() != 2 || v[0] < 1 || v[1] < 1) n.fail("must be a positive size or [height, width]");
  return {v[0], v[1]};
}

Interp interp_of(const Config& c) {
  return c.get<std::string>("interpolation") == "nearest" ? Interp::nearest : Interp::bilinear;
}

// Calls row(first element, step between elements, count) for each row of a uint8 (C, H, W)
// image of any strides, in C-contiguous order.
template <class F>
void rows(const torch::Tensor& x, F&& row) {
  const auto* base = x.data_ptr<std::uint8_t>();
  for (std::int64_t c = 0; c < x.size(0); ++c)
    for (std::int64_t r = 0; r < x.size(1); ++r) row(base + c * x.stride(0) + r * x.stride(1), x.stride(2), x.size(2));
}

// ---- value transforms --------------------------------------------------------------------

struct ToTensor : Transform {
  torch::Tensor apply(const torch::Tensor& x, Rng&) const override {
    need_chw("to_tensor", x);
    if (x.is_floating_point()) return x;  // already converted
    if (x.scalar_type() != torch::kUInt8)
      throw Error::usage("to_tensor: expected a uint8 image, got " + dtype_name(x.scalar_type()));
    // one pass over a table of the 256 quotients LibTorch's float division gives (a sample
    // is too small to be worth the dispatch of two ops)
    static const auto quotients = [] {
      std::array<float, 256> q{};
      for (int v = 0; v < 256; ++v) q[static_cast<std::size_t>(v)] = static_cast<float>(v) / 255.0f;
      return q;
    }();
    auto y = torch::empty(x.sizes(), torch::kFloat);
    float* out = y.data_ptr<float>();
    rows(x, [&](const std::uint8_t* in, std::int64_t step, std::int64_t n) {
      for (std::int64_t i = 0; i < n; ++i) out[i] = quotients[in[i * step]];
      out += n;
    });
    return y;
  }
};

struct Normalize : Transform {
  torch::Tensor mean, std;          // (n, 1, 1) float
  std::vector<float> mean_, std_;   // the same values
  torch::Tensor apply(const torch::Tensor& x, Rng&) const override {
    need_chw("normalize", x);
    if (!x.is_floating_point())
      throw Error::usage("normalize: needs a float image, got " + dtype_name(x.scalar_type()) +
                         " (put to_tensor before it)");
    const auto n = mean.size(0);
    if (n != 1 && n != x.size(0))
      throw Error::usage("normalize: " + std::to_string(n) + " mean/std values for an image with " +
                         std::to_string(x.size(0)) + " channels");
    if (x.scalar_type() != torch::kFloat || !x.is_contiguous())
      return (x - mean.to(x.scalar_type())).div_(std.to(x.scalar_type()));
    // one pass: (x - mean) / std in float, as LibTorch's two ops compute it
    auto y = torch::empty(x.sizes(), torch::kFloat);
    const float* in = x.data_ptr<float>();
    float* out = y.data_ptr<float>();
    const auto plane = x.size(1) * x.size(2);
    for (std::int64_t c = 0; c < x.size(0); ++c) {
      const float m = mean_[static_cast<std::size_t>(n == 1 ? 0 : c)], s = std_[static_cast<std::size_t>(n == 1 ? 0 : c)];
      for (std::int64_t i = c * plane; i < (c + 1) * plane; ++i) out[i] = (in[i] - m) / s;
    }
    return y;
  }
};

struct GrayscaleToRgb : Transform {
  torch::Tensor apply(const torch::Tensor& x, Rng&) const override {
    need_chw("grayscale_to_rgb", x);
    if (x.size(0) == 3) return x;
    if (x.size(0) != 1)
      throw Error::usage("grayscale_to_rgb: expected 1 or 3 channels, got " + std::to_string(x.size(0)));
    return x.repeat({3, 1, 1});
  }
  Shape output_shape(const Shape& in) const override { return {in[0] == 1 ? 3 : in[0], in[1], in[2]}; }
};

// ---- geometry ----------------------------------------------------------------------------

struct Resize : Transform {
  std::int64_t shorter = 0, h = 0, w = 0;  // shorter side, or an exact (h, w)
  Interp interp = Interp::bilinear;
  bool antialias = false;
  Shape hw(std::int64_t ih, std::int64_t iw) const { return shorter ? resized_hw(ih, iw, shorter) : Shape{h, w}; }
  torch::Tensor apply(const torch::Tensor& x, Rng&) const override {
    need_chw("resize", x);
    const auto s = hw(x.size(1), x.size(2));
    return resize(x, s[0], s[1], interp, antialias);
  }
  Shape output_shape(const Shape& in) const override {
    const auto s = hw(in[1], in[2]);
    return {in[0], s[0], s[1]};
  }
};

struct CenterCrop : Transform {
  std::int64_t h = 0, w = 0;
  torch::Tensor apply(const torch::Tensor& x, Rng&) const override {
    need_chw("center_crop", x);
    return center_crop(x, h, w);
  }
  Shape output_shape(const Shape& in) const override { return {in[0], h, w}; }
};

struct Padding {
  std::int64_t left = 0, top = 0, right = 0, bottom = 0;
  PadMode mode = PadMode::constant;
  double fill = 0;
};

/// torchvision's padding: an int (all sides), [left/right, top/bottom] or [left, top, right, bottom].
Padding padding_of(const Config& c) {
  Padding p;
  const Config n = c["padding"];
  const Shape v = n.is_list() ? n.as<Shape>() : Shape{n.as<std::int64_t>()};
  if (v.size() == 1) p.left = p.top = p.right = p.bottom = v[0];
  else if (v.size() == 2) p.left = p.right = v[0], p.top = p.bottom = v[1];
  else if (v.size() == 4) p.left = v[0], p.top = v[1], p.right = v[2], p.bottom = v[3];
  else n.fail("must be an int, [left/right, top/bottom] or [left, top, right, bottom]");
  if (std::min({p.left, p.top, p.right, p.bottom}) < 0) n.fail("must not be negative");
  const auto mode = c.get<std::string>("padding_mode");
  if (mode == "edge") p.mode = PadMode::edge;
  else if (mode == "reflect") p.mode = PadMode::reflect;
  else if (mode == "symmetric") p.mode = PadMode::symmetric;
  else p.mode = PadMode::constant;
  p.fill = c.get<double>("fill");
  return p;
}

torch::Tensor padded(const torch::Tensor& x, const Padding& p) {
  return pad(x, p.left, p.top, p.right, p.bottom, p.mode, p.fill);
}

struct Pad : Transform {
  Padding p;
  torch::Tensor apply(const torch::Tensor& x, Rng&) const override {
    need_chw("pad", x);
    return padded(x, p);
  }
  Shape output_shape(const Shape& in) const override {
    return {in[0], in[1] + p.top + p.bottom, in[2] + p.left + p.right};
  }
};

// Draws: nothing when the (padded) image is exactly the crop size, else the top row
// integer(0, H - h), then the left column integer(0, W - w).
struct RandomCrop : Transform {
  std::int64_t h = 0, w = 0;
  Padding p;
  bool pad_if_needed = false;
  torch::Tensor apply(const torch::Tensor& image, Rng& rng) const override {
    need_chw("random_crop", image);
    if (direct(image)) {
      // the padded size, pad_if_needed's padding (in the same constant) included
      auto left = p.left, top = p.top;
      auto iw = image.size(2) + p.left + p.right, ih = image.size(1) + p.top + p.bottom;
      if (pad_if_needed && iw < w) left += w - iw, iw += 2 * (w - iw);
      if (pad_if_needed && ih < h) top += h - ih, ih += 2 * (h - ih);
      if (ih >= h && iw >= w && !(ih == h && iw == w)) {
        const auto y0 = rng.integer(0, ih - h);
        const auto x0 = rng.integer(0, iw - w);
        return image.scalar_type() == torch::kFloat ? window<float>(image, y0 - top, x0 - left)
                                                    : window<std::uint8_t>(image, y0 - top, x0 - left);
      }
    }
    auto x = padded(image, p);
    if (pad_if_needed && x.size(2) < w) {
      const auto d = w - x.size(2);
      x = pad(x, d, 0, d, 0, p.mode, p.fill);
    }
    if (pad_if_needed && x.size(1) < h) {
      const auto d = h - x.size(1);
      x = pad(x, 0, d, 0, d, p.mode, p.fill);
    }
    const auto ih = x.size(1), iw = x.size(2);
    if (ih < h || iw < w)
      throw Error::usage("random_crop: a " + std::to_string(h) + "x" + std::to_string(w) + " crop of a " +
                         std::to_string(ih) + "x" + std::to_string(iw) + " image (after padding); set pad_if_needed");
    if (ih == h && iw == w) return x;
    const auto top = rng.integer(0, ih - h);
    const auto left = rng.integer(0, iw - w);
    return crop(x, top, left, h, w);
  }
  // Constant padding of a uint8 or float image: the window is copied out of the image, the
  // rest filled, in one pass (a small sample's pad and crop are mostly op dispatch).
  bool direct(const torch::Tensor& x) const {
    if (p.mode != PadMode::constant) return false;
    if (x.scalar_type() == torch::kFloat) return true;
    return x.scalar_type() == torch::kUInt8 && p.fill == std::floor(p.fill) && p.fill >= 0 && p.fill <= 255;
  }
  template <class T>
  torch::Tensor window(const torch::Tensor& x, std::int64_t top, std::int64_t left) const {
    auto y = torch::full({x.size(0), h, w}, p.fill, x.options());
    const T* in = x.data_ptr<T>();
    T* out = y.data_ptr<T>();
    const auto H = x.size(1), W = x.size(2), sc = x.stride(0), sy = x.stride(1), sx = x.stride(2);
    // output (r, c) is input (r + top, c + left): the rows and columns inside the image
    const auto r0 = std::max<std::int64_t>(0, -top), r1 = std::min(h, H - top);
    const auto c0 = std::max<std::int64_t>(0, -left), c1 = std::min(w, W - left);
    for (std::int64_t ch = 0; ch < x.size(0); ++ch)
      for (std::int64_t r = r0; r < r1; ++r) {
        const T* src = in + ch * sc + (r + top) * sy + (c0 + left) * sx;
        T* dst = out + (ch * h + r) * w;
        for (std::int64_t c = c0; c < c1; ++c, src += sx) dst[c] = *src;
      }
    return y;
  }
  Shape output_shape(const Shape& in) const override { return {in[0], h, w}; }
  bool random() const override { return true; }
};

// Draws: one bernoulli(p).
struct RandomFlip : Transform {
  double p = 0.5;
  std::int64_t dim = -1;  // -1: horizontal, -2: vertical
  torch::Tensor apply(const torch::Tensor& x, Rng& rng) const override {
    need_chw(dim == -1 ? "random_horizontal_flip" : "random_vertical_flip", x);
    if (!rng.bernoulli(p)) return x;
    if (dim != -1 || x.scalar_type() != torch::kUInt8) return x.flip({dim});
    // each row reversed, in one pass (LibTorch's flip indexes every element)
    auto y = torch::empty(x.sizes(), x.options());
    auto* out = y.data_ptr<std::uint8_t>();
    rows(x, [&](const std::uint8_t* in, std::int64_t step, std::int64_t n) {
      for (std::int64_t i = 0; i < n; ++i) out[n - 1 - i] = in[i * step];
      out += n;
    });
    return y;
  }
  bool random() const override { return true; }
};

// Draws: the angle, uniform(lo, hi).
struct RandomRotation : Transform {
  double lo = 0, hi = 0;
  Interp interp = Interp::nearest;
  std::vector<double> fill;
  torch::Tensor apply(const torch::Tensor& x, Rng& rng) const override {
    need_chw("random_rotation", x);
    if (fill.size() != 1 && static_cast<std::int64_t>(fill.size()) != x.size(0))
      throw Error::usage("random_rotation: " + std::to_string(fill.size()) + " fill values for an image with " +
                         std::to_string(x.size(0)) + " channels");
    return rotate(x, rng.uniform(lo, hi), interp, fill);
  }
  bool random() const override { return true; }
};

// torchvision's RandomResizedCrop.get_params. Draws, per attempt (at most 10): the area
// fraction uniform(scale), the log aspect ratio uniform(log ratio); then, for a crop that
// fits, the top integer(0, H - h) and the left integer(0, W - w). As the first transform of
// a dataset of image files it decodes only the crop (apply_lazy): a JPEG's rows and columns
// of the crop, and with antialias at 1/2, 1/4 or 1/8 scale when the crop is at least 2, 4
// or 8 times the output size (JPEG's DCT scaling, itself a smoothing downscale).
struct RandomResizedCrop : Transform {
  std::int64_t h = 0, w = 0;
  double scale_lo = 0.08, scale_hi = 1, ratio_lo = 3. / 4, ratio_hi = 4. / 3;
  Interp interp = Interp::bilinear;
  bool antialias = false;

  graft::Box draw(std::int64_t height, std::int64_t width, Rng& rng) const {
    const double area = static_cast<double>(height * width);
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double target = area * rng.uniform(scale_lo, scale_hi);
      const double aspect = std::exp(rng.uniform(std::log(ratio_lo), std::log(ratio_hi)));
      const auto cw = round_half_even(std::sqrt(target * aspect));
      const auto ch = round_half_even(std::sqrt(target / aspect));
      if (0 < cw && cw <= width && 0 < ch && ch <= height) {
        const auto top = rng.integer(0, height - ch);
        const auto left = rng.integer(0, width - cw);
        return box_of(top, left, ch, cw);
      }
    }
    const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
    std::int64_t cw = width, ch = height;
    if (in_ratio < ratio_lo) ch = round_half_even(static_cast<double>(cw) / ratio_lo);
    else if (in_ratio > ratio_hi) cw = round_half_even(static_cast<double>(ch) * ratio_hi);
    return box_of((height - ch) / 2, (width - cw) / 2, ch, cw);
  }
  static graft::Box box_of(std::int64_t top, std::int64_t left, std::int64_t height, std::int64_t width) {
    return {static_cast<double>(top), static_cast<double>(left), static_cast<double>(height), static_cast<double>(width)};
  }
  bool smooth() const { return antialias && interp == Interp::bilinear; }

  torch::Tensor apply(const torch::Tensor& x, Rng& rng) const override {
    need_chw("random_resized_crop", x);
    const auto b = draw(x.size(1), x.size(2), rng);
    const auto region = crop(x, static_cast<std::int64_t>(b.top), static_cast<std::int64_t>(b.left),
                             static_cast<std::int64_t>(b.height), static_cast<std::int64_t>(b.width));
    if (smooth()) return resize_aa(region, graft::Box{0, 0, b.height, b.width}, h, w);
    return resize(region, h, w, interp);
  }
  torch::Tensor apply_lazy(const graft::LazyImage& image, Rng& rng) const override {
    const auto s = image.shape();
    const auto b = draw(s[1], s[2], rng);
    if (smooth()) {
      const auto r = image.decode(b, h, w);
      return resize_aa(r.image, r.box, h, w);
    }
    // full scale: the decoded region is the crop itself, bit for bit
    const auto r = image.decode(b, static_cast<std::int64_t>(b.height), static_cast<std::int64_t>(b.width));
    return resize(r.image.contiguous(), h, w, interp);
  }
  Shape output_shape(const Shape& in) const override { return {in[0], h, w}; }
  bool random() const override { return true; }
};

// ---- factories ---------------------------------------------------------------------------

std::shared_ptr<Transform> make_to_tensor(const Config&) { return std::make_shared<ToTensor>(); }

std::shared_ptr<Transform> make_normalize(const Config& c) {
  auto t = std::make_shared<Normalize>();
  const auto mean = c.get<std::vector<double>>("mean"), std = c.get<std::vector<double>>("std");
  if (std.size() != mean.size())
    c["std"].fail("has " + std::to_string(std.size()) + " values, mean has " + std::to_string(mean.size()));
  for (std::size_t i = 0; i < std.size(); ++i)
    if (std[i] == 0) c["std"][i].fail("must be non-zero");
  const auto n = static_cast<std::int64_t>(mean.size());
  t->mean = torch::tensor(mean, torch::kDouble).to(torch::kFloat).view({n, 1, 1});
  t->std = torch::tensor(std, torch::kDouble).to(torch::kFloat).view({n, 1, 1});
  for (std::size_t i = 0; i < mean.size(); ++i) {
    t->mean_.push_back(static_cast<float>(mean[i]));
    t->std_.push_back(static_cast<float>(std[i]));
  }
  return t;
}

std::shared_ptr<Transform> make_resize(const Config& c) {
  auto t = std::make_shared<Resize>();
  const Config n = c["size"];
  const Shape v = n.is_list() ? n.as<Shape>() : Shape{n.as<std::int64_t>()};
  if (v.empty() || v.size() > 2 || *std::min_element(v.begin(), v.end()) < 1)
    n.fail("must be a positive int (the shorter side) or [height, width]");
  if (v.size() == 1) t->shorter = v[0];
  else t->h = v[0], t->w = v[1];
  t->interp = interp_of(c);
  t->antialias = c.get<bool>("antialias");
  return t;
}

std::shared_ptr<Transform> make_center_crop(const Config& c) {
  auto t = std::make_shared<CenterCrop>();
  std::tie(t->h, t->w) = size_hw(c, "size");
  return t;
}

std::shared_ptr<Transform> make_pad(const Config& c) {
  auto t = std::make_shared<Pad>();
  t->p = padding_of(c);
  return t;
}

std::shared_ptr<Transform> make_random_crop(const Config& c) {
  auto t = std::make_shared<RandomCrop>();
  std::tie(t->h, t->w) = size_hw(c, "size");
  t->p = padding_of(c);
  t->pad_if_needed = c.get<bool>("pad_if_needed");
  return t;
}

std::shared_ptr<Transform> make_flip(const Config& c, std::int64_t dim) {
  auto t = std::make_shared<RandomFlip>();
  t->p = c.get<double>("p");
  t->dim = dim;
  return t;
}
std::shared_ptr<Transform> make_hflip(const Config& c) { return make_flip(c, -1); }
std::shared_ptr<Transform> make_vflip(const Config& c) { return make_flip(c, -2); }

std::shared_ptr<Transform> make_random_rotation(const Config& c) {
  auto t = std::make_shared<RandomRotation>();
  const Config d = c["degrees"];
  if (d.is_list()) {
    const auto v = d.as<std::vector<double>>();
    if (v.size() != 2 || !(v[0] <= v[1])) d.fail("must be a number or [min, max] with min <= max");
    t->lo = v[0], t->hi = v[1];
  } else {
    const auto v = d.as<double>();
    if (!(v >= 0)) d.fail("a single number must be non-negative (the range is [-degrees, degrees])");
    t->lo = -v, t->hi = v;
  }
  t->interp = interp_of(c);
  const Config f = c["fill"];
  t->fill = f.is_list() ? f.as<std::vector<double>>() : std::vector<double>{f.as<double>()};
  if (t->fill.empty()) f.fail("must not be empty");
  return t;
}

std::shared_ptr<Transform> make_random_resized_crop(const Config& c) {
  auto t = std::make_shared<RandomResizedCrop>();
  std::tie(t->h, t->w) = size_hw(c, "size");
  const auto scale = c.get<std::vector<double>>("scale"), ratio = c.get<std::vector<double>>("ratio");
  if (!(scale[0] <= scale[1])) c["scale"].fail("must be [min, max] with min <= max");
  if (!(ratio[0] <= ratio[1])) c["ratio"].fail("must be [min, max] with min <= max");
  t->scale_lo = scale[0], t->scale_hi = scale[1], t->ratio_lo = ratio[0], t->ratio_hi = ratio[1];
  t->interp = interp_of(c);
  t->antialias = c.get<bool>("antialias");
  return t;
}

std::shared_ptr<Transform> make_grayscale_to_rgb(const Config&) { return std::make_shared<GrayscaleToRgb>(); }

using graft::KeySpec;
using graft::ValueType;

KeySpec size_key(const char* doc) { return KeySpec::required_key("size", ValueType::any, doc); }
KeySpec interp_key(const char* def) {
  return KeySpec("interpolation", def, "how pixels are resampled").choices({"nearest", "bilinear"});
}
KeySpec padding_mode_key() {
  return KeySpec("padding_mode", "constant", "how the border is filled").choices({"constant", "edge", "reflect", "symmetric"});
}

}  // namespace

GRAFT_PLUGIN(transform, "to_tensor", make_to_tensor, "uint8 image -> float in [0, 1] (x / 255), as ToTensor");
GRAFT_PLUGIN(transform, "normalize", make_normalize, "(x - mean) / std per channel, on float images, as Normalize",
             KeySpec::required_key("mean", ValueType::number_list, "one value per channel (or one for all)").non_empty(),
             KeySpec::required_key("std", ValueType::number_list, "one non-zero value per channel (or one for all)").finite());
GRAFT_PLUGIN(transform, "resize", make_resize, "Resize: size = the shorter side, or [height, width]",
             size_key("an int (the shorter side) or [height, width]"), interp_key("bilinear"),
             KeySpec("antialias", false, "smooth before downscaling, as PIL and torchvision's antialias=True (bilinear)"));
GRAFT_PLUGIN(transform, "center_crop", make_center_crop, "CenterCrop (zero padding when larger than the image)",
             size_key("an int (square) or [height, width]"));
GRAFT_PLUGIN(transform, "pad", make_pad, "Pad",
             KeySpec::required_key("padding", ValueType::any, "int, [left/right, top/bottom] or [left, top, right, bottom]"),
             KeySpec("fill", 0.0, "value of constant padding"),
             padding_mode_key());
GRAFT_PLUGIN(transform, "random_crop", make_random_crop, "RandomCrop: optional padding, then a random window",
             size_key("an int (square) or [height, width]"),
             KeySpec("padding", ValueType::any, "0", "int, [left/right, top/bottom] or [left, top, right, bottom]"),
             KeySpec("pad_if_needed", false, "pad an image smaller than the crop"),
             KeySpec("fill", 0.0, "value of constant padding"),
             padding_mode_key());
GRAFT_PLUGIN(transform, "random_horizontal_flip", make_hflip, "RandomHorizontalFlip",
             KeySpec("p", 0.5, "probability of a flip").min(0).max(1));
GRAFT_PLUGIN(transform, "random_vertical_flip", make_vflip, "RandomVerticalFlip",
             KeySpec("p", 0.5, "probability of a flip").min(0).max(1));
GRAFT_PLUGIN(transform, "random_rotation", make_random_rotation,
             "RandomRotation about the centre (expand off), uniform angle in degrees",
             KeySpec::required_key("degrees", ValueType::any, "d (the range [-d, d]) or [min, max]"),
             interp_key("nearest"),
             KeySpec("fill", ValueType::any, "0", "value of the area outside the image: a number or one per channel"));
GRAFT_PLUGIN(transform, "random_resized_crop", make_random_resized_crop,
             "RandomResizedCrop: a random area and aspect ratio, resized to size",
             size_key("an int (square) or [height, width]"),
             KeySpec("scale", std::vector<double>{0.08, 1.0}, "range [min, max] of the crop's area fraction")
                 .length(2)
                 .greater_than(0),
             KeySpec("ratio", std::vector<double>{3.0 / 4.0, 4.0 / 3.0}, "range [min, max] of the crop's aspect ratio")
                 .length(2)
                 .greater_than(0),
             interp_key("bilinear"),
             KeySpec("antialias", false,
                     "smooth the downscale (bilinear), as PIL and torchvision's ImageFolder do; lets a JPEG "
                     "crop be decoded at 1/2, 1/4 or 1/8 scale"));
GRAFT_PLUGIN(transform, "grayscale_to_rgb", make_grayscale_to_rgb, "1 channel -> 3 by repetition (3 channels: unchanged)");
