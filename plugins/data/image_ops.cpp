#include "image_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include <graft/error.h>

namespace graft::data {

namespace F = torch::nn::functional;

std::int64_t round_half_even(double v) { return static_cast<std::int64_t>(std::nearbyint(v)); }

namespace {

// Source index of each output position along one axis of length n padded by (before, after).
torch::Tensor pad_index(std::int64_t n, std::int64_t before, std::int64_t after, PadMode mode) {
  std::vector<std::int64_t> idx;
  idx.reserve(static_cast<std::size_t>(n + before + after));
  for (std::int64_t i = -before; i < n + after; ++i) {
    std::int64_t j = i;
    if (mode == PadMode::edge) {
      j = std::clamp<std::int64_t>(i, 0, n - 1);
    } else if (mode == PadMode::reflect) {
      if (j < 0) j = -j;
      if (j >= n) j = 2 * (n - 1) - j;
    } else {  // symmetric
      if (j < 0) j = -j - 1;
      if (j >= n) j = 2 * n - 1 - j;
    }
    idx.push_back(j);
  }
  return torch::tensor(idx, torch::kInt64);
}

}  // namespace

torch::Tensor pad(const torch::Tensor& img, std::int64_t left, std::int64_t top, std::int64_t right,
                  std::int64_t bottom, PadMode mode, double fill) {
  if (left == 0 && top == 0 && right == 0 && bottom == 0) return img;
  if (mode == PadMode::constant) return torch::constant_pad_nd(img, {left, right, top, bottom}, fill);
  const auto h = img.size(-2), w = img.size(-1);
  const std::int64_t most = mode == PadMode::reflect ? 1 : 0;  // reflect leaves out the edge pixel
  if (mode != PadMode::edge && (std::max(left, right) > w - most || std::max(top, bottom) > h - most))
    throw Error::usage("padding of " + std::to_string(std::max({left, right, top, bottom})) + " is too large for a " +
                       std::to_string(h) + "x" + std::to_string(w) + " image in " +
                       (mode == PadMode::reflect ? "reflect" : "symmetric") + " mode");
  return img.index_select(-2, pad_index(h, top, bottom, mode)).index_select(-1, pad_index(w, left, right, mode));
}

torch::Tensor crop(const torch::Tensor& img, std::int64_t top, std::int64_t left, std::int64_t height,
                   std::int64_t width) {
  const auto h = img.size(-2), w = img.size(-1);
  const auto right = left + width, bottom = top + height;
  if (left < 0 || top < 0 || right > w || bottom > h) {
    const auto inside = img.slice(-2, std::max<std::int64_t>(top, 0), std::max<std::int64_t>(bottom, 0))
                            .slice(-1, std::max<std::int64_t>(left, 0), std::max<std::int64_t>(right, 0));
    return pad(inside, std::max<std::int64_t>(-left + std::min<std::int64_t>(0, right), 0),
               std::max<std::int64_t>(-top + std::min<std::int64_t>(0, bottom), 0),
               std::max<std::int64_t>(right - std::max(w, left), 0),
               std::max<std::int64_t>(bottom - std::max(h, top), 0), PadMode::constant, 0);
  }
  return img.slice(-2, top, bottom).slice(-1, left, right);
}

torch::Tensor center_crop(const torch::Tensor& img, std::int64_t height, std::int64_t width) {
  torch::Tensor x = img;
  auto h = x.size(-2), w = x.size(-1);
  if (width > w || height > h) {
    x = pad(x, width > w ? (width - w) / 2 : 0, height > h ? (height - h) / 2 : 0,
            width > w ? (width - w + 1) / 2 : 0, height > h ? (height - h + 1) / 2 : 0, PadMode::constant, 0);
    h = x.size(-2);
    w = x.size(-1);
    if (width == w && height == h) return x;
  }
  return crop(x, round_half_even((h - height) / 2.0), round_half_even((w - width) / 2.0), height, width);
}

std::vector<std::int64_t> resized_hw(std::int64_t height, std::int64_t width, std::int64_t shorter) {
  const auto short_side = std::min(height, width), long_side = std::max(height, width);
  const auto new_long = static_cast<std::int64_t>(static_cast<double>(shorter) * long_side / short_side);
  return width <= height ? std::vector<std::int64_t>{new_long, shorter} : std::vector<std::int64_t>{shorter, new_long};
}

torch::Tensor resize(const torch::Tensor& img, std::int64_t height, std::int64_t width, Interp interp, bool antialias) {
  if (img.size(-2) == height && img.size(-1) == width) return img;
  const bool cast = !(img.scalar_type() == torch::kFloat || img.scalar_type() == torch::kDouble);
  auto x = (cast ? img.to(torch::kFloat) : img).unsqueeze(0);
  if (antialias && interp == Interp::bilinear) {
    x = at::_upsample_bilinear2d_aa(x, {height, width}, /*align_corners=*/false, c10::nullopt, c10::nullopt).squeeze(0);
    return cast ? x.round().to(img.scalar_type()) : x;
  }
  auto options = F::InterpolateFuncOptions().size(std::vector<std::int64_t>{height, width});
  if (interp == Interp::bilinear) options.mode(torch::kBilinear).align_corners(false);
  else options.mode(torch::kNearest);
  x = F::interpolate(x, options).squeeze(0);
  return cast ? x.round().to(img.scalar_type()) : x;
}

namespace {

// The taps of one axis: output i reads `count[i]` inputs from `first[i]` with weights
// w[i * stride ...], PIL's precompute_coeffs for the bilinear (triangle) filter.
struct Taps {
  std::vector<std::int64_t> first, count;
  std::vector<float> w;
  std::int64_t stride = 0;
};

Taps taps(std::int64_t in_size, double in0, double in_len, std::int64_t out_size) {
  const double scale = in_len / static_cast<double>(out_size);
  const double filter_scale = std::max(scale, 1.0);
  const double support = filter_scale;  // the triangle's support (1) widened by the downscale
  Taps t;
  t.stride = static_cast<std::int64_t>(std::ceil(support)) * 2 + 1;
  t.first.resize(static_cast<std::size_t>(out_size));
  t.count.resize(static_cast<std::size_t>(out_size));
  t.w.assign(static_cast<std::size_t>(out_size * t.stride), 0.0f);
  std::vector<double> k(static_cast<std::size_t>(t.stride));
  for (std::int64_t i = 0; i < out_size; ++i) {
    const double center = in0 + (static_cast<double>(i) + 0.5) * scale;
    const auto lo = std::max<std::int64_t>(static_cast<std::int64_t>(center - support + 0.5), 0);
    const auto hi = std::min<std::int64_t>(static_cast<std::int64_t>(center + support + 0.5), in_size);
    const auto n = std::clamp<std::int64_t>(hi - lo, 0, t.stride);
    double total = 0;
    for (std::int64_t j = 0; j < n; ++j) {
      const double x = std::abs((static_cast<double>(j + lo) - center + 0.5) / filter_scale);
      k[static_cast<std::size_t>(j)] = x < 1 ? 1 - x : 0;
      total += k[static_cast<std::size_t>(j)];
    }
    t.first[static_cast<std::size_t>(i)] = lo;
    t.count[static_cast<std::size_t>(i)] = n;
    for (std::int64_t j = 0; j < n; ++j)
      t.w[static_cast<std::size_t>(i * t.stride + j)] = static_cast<float>(total > 0 ? k[static_cast<std::size_t>(j)] / total : 0);
  }
  return t;
}

// Round half to even for 0 <= v < 2^22 without a libm call (vectorisable): adding and
// taking away 1.5 * 2^23 leaves the float rounded to an integer in the default rounding mode.
inline float round_even(float v) { return (v + 12582912.0f) - 12582912.0f; }

// CP floats as one vector (GCC/Clang vector extension: SSE on x86, NEON on ARM).
template <int CP> struct LanesOf { typedef float type __attribute__((vector_size(CP * sizeof(float)))); };
template <> struct LanesOf<1> { typedef float type; };
template <int CP> using Lanes = typename LanesOf<CP>::type;
template <int CP> float lane(const Lanes<CP>& v, std::int64_t c) {
  if constexpr (CP == 1) return v;
  else return v[c];
}

// The horizontal taps of one row of pixels (C floats each, read CP at a time) into
// channel-major planes of `width` floats.
template <int C, int CP>
void horizontal(const float* __restrict px, const Taps& tx, std::int64_t x0, std::int64_t width, float* __restrict planes) {
  const std::int64_t* first = tx.first.data();
  const std::int64_t* count = tx.count.data();
  for (std::int64_t x = 0; x < width; ++x) {
    Lanes<CP> acc{};
    const float* __restrict wx = tx.w.data() + x * tx.stride;
    const float* __restrict p = px + (first[x] - x0) * C;
    for (std::int64_t j = 0, n = count[x]; j < n; ++j) {
      Lanes<CP> v;
      std::memcpy(&v, p + j * C, sizeof v);
      acc += wx[j] * v;
    }
    for (int c = 0; c < C; ++c) planes[c * width + x] = lane<CP>(acc, c);
  }
}

// One output row at a time: the vertical taps of the rows it needs, summed into `px` (the
// input columns any output reads, pixel-major, C floats a pixel), then the horizontal taps
// of `px`, CP floats at a time (one SIMD vector for RGB), into channel-major planes that are
// rounded into the output. An HWC decoder buffer's rows are summed in place (contiguous,
// vectorised); a CHW tensor's channel by channel, then interleaved.
template <class T, int C, int CP = C == 1 ? 1 : 4>
void resample(const torch::Tensor& img, const Taps& tx, const Taps& ty, torch::Tensor& out) {
  const auto width = out.size(2), height = out.size(1);
  const auto sc = img.stride(0), sy = img.stride(1), sx = img.stride(2);
  const bool interleaved = sc == 1 && sx == C;
  const T* in = img.data_ptr<T>();
  const std::int64_t x0 = tx.first.front();
  std::int64_t x1 = x0;
  for (std::size_t i = 0; i < tx.first.size(); ++i) x1 = std::max(x1, tx.first[i] + tx.count[i]);
  const auto n = x1 - x0;
  // + CP: a vector load at the last pixel reads past its C floats
  std::vector<float> px(static_cast<std::size_t>(n * C + CP)), planes(interleaved ? 0 : static_cast<std::size_t>(n * C));
  std::vector<float> acc_planes(static_cast<std::size_t>(width * C));
  T* dst = out.data_ptr<T>();
  const auto plane = height * width;
  for (std::int64_t y = 0; y < height; ++y) {
    float* sums = interleaved ? px.data() : planes.data();
    std::fill(sums, sums + n * C, 0.0f);
    const float* wy = ty.w.data() + y * ty.stride;
    for (std::int64_t j = 0; j < ty.count[static_cast<std::size_t>(y)]; ++j) {
      const T* r = in + (ty.first[static_cast<std::size_t>(y)] + j) * sy + x0 * sx;
      const float w = wy[j];
      if (interleaved) {
        for (std::int64_t k = 0; k < n * C; ++k) sums[k] += w * static_cast<float>(r[k]);
      } else if (sx == 1) {
        for (std::int64_t c = 0; c < C; ++c) {
          const T* rc = r + c * sc;
          float* s = sums + c * n;
          for (std::int64_t k = 0; k < n; ++k) s[k] += w * static_cast<float>(rc[k]);
        }
      } else {
        for (std::int64_t c = 0; c < C; ++c)
          for (std::int64_t k = 0; k < n; ++k) sums[c * n + k] += w * static_cast<float>(r[c * sc + k * sx]);
      }
    }
    if (!interleaved)
      for (std::int64_t k = 0; k < n; ++k)
        for (std::int64_t c = 0; c < C; ++c) px[static_cast<std::size_t>(k * C + c)] = sums[c * n + k];
    horizontal<C, CP>(px.data(), tx, x0, width, acc_planes.data());
    for (std::int64_t c = 0; c < C; ++c) {
      T* __restrict d = dst + c * plane + y * width;
      float* __restrict v = acc_planes.data() + c * width;
      if constexpr (std::is_same_v<T, std::uint8_t>) {
        // separate simple loops: each vectorises (clamp, round, convert)
        for (std::int64_t x = 0; x < width; ++x) v[x] = v[x] < 0.0f ? 0.0f : (v[x] > 255.0f ? 255.0f : v[x]);
        for (std::int64_t x = 0; x < width; ++x) v[x] = round_even(v[x]);
        for (std::int64_t x = 0; x < width; ++x) d[x] = static_cast<std::uint8_t>(static_cast<std::int32_t>(v[x]));
      } else {
        std::memcpy(d, v, static_cast<std::size_t>(width) * sizeof(float));
      }
    }
  }
}

template <class T>
void resample_any(const torch::Tensor& img, const Taps& tx, const Taps& ty, torch::Tensor& out) {
  switch (img.size(0)) {
    case 1: return resample<T, 1>(img, tx, ty, out);
    case 2: return resample<T, 2>(img, tx, ty, out);
    case 3: return resample<T, 3>(img, tx, ty, out);
    case 4: return resample<T, 4>(img, tx, ty, out);
    default:
      for (std::int64_t c = 0; c < img.size(0); ++c) {  // many channels: one at a time
        auto o = out.narrow(0, c, 1);
        resample<T, 1>(img.narrow(0, c, 1), tx, ty, o);
      }
  }
}

}  // namespace

torch::Tensor resize_aa(const torch::Tensor& img, const graft::Box& box, std::int64_t height, std::int64_t width) {
  if (img.dim() != 3 || img.size(1) < 1 || img.size(2) < 1 || height < 1 || width < 1)
    throw Error::usage("resize: expected a non-empty (C, H, W) image and a positive size");
  auto out = torch::empty({img.size(0), height, width}, img.options().memory_format(torch::MemoryFormat::Contiguous));
  const auto tx = taps(img.size(2), box.left, box.width, width), ty = taps(img.size(1), box.top, box.height, height);
  if (img.scalar_type() == torch::kUInt8) resample_any<std::uint8_t>(img, tx, ty, out);
  else if (img.scalar_type() == torch::kFloat) resample_any<float>(img, tx, ty, out);
  else return resize_aa(img.to(torch::kFloat), box, height, width).to(img.scalar_type());
  return out;
}

torch::Tensor rotate(const torch::Tensor& img, double degrees, Interp interp, const std::vector<double>& fill) {
  // torchvision builds the inverse affine matrix in double, then samples a float grid.
  const double rot = -degrees * M_PI / 180.0;
  const std::vector<double> matrix = {std::cos(rot), std::sin(rot), 0.0, -std::sin(rot), std::cos(rot), 0.0};
  const bool cast = !img.is_floating_point();
  const auto dtype = cast ? torch::kFloat : img.scalar_type();
  const auto h = img.size(-2), w = img.size(-1);
  auto theta = torch::tensor(matrix, torch::kDouble).to(dtype).reshape({1, 2, 3});
  auto base = torch::empty({1, h, w, 3}, dtype);
  base.select(-1, 0).copy_(torch::linspace(-w * 0.5 + 0.5, w * 0.5 + 0.5 - 1, w));
  base.select(-1, 1).copy_(torch::linspace(-h * 0.5 + 0.5, h * 0.5 + 0.5 - 1, h).unsqueeze_(-1));
  base.select(-1, 2).fill_(1);
  auto scaled = theta.transpose(1, 2) / torch::tensor({0.5 * w, 0.5 * h}, torch::kDouble).to(dtype);
  auto grid = base.view({1, h * w, 3}).bmm(scaled).view({1, h, w, 2});

  auto x = (cast ? img.to(dtype) : img).unsqueeze(0);
  x = torch::cat({x, torch::ones({1, 1, h, w}, x.options())}, 1);
  auto options = F::GridSampleFuncOptions().padding_mode(torch::kZeros).align_corners(false);
  if (interp == Interp::bilinear) options.mode(torch::kBilinear);
  else options.mode(torch::kNearest);
  x = F::grid_sample(x, grid, options);
  auto mask = x.slice(1, -1).expand({1, img.size(0), h, w});
  x = x.slice(1, 0, -1);
  auto fill_img = torch::tensor(fill, torch::kDouble).to(dtype).view({1, -1, 1, 1}).expand_as(x);
  if (interp == Interp::nearest) x = torch::where(mask < 0.5, fill_img, x);
  else x = x * mask + (1.0 - mask) * fill_img;
  x = x.squeeze(0);
  return cast ? x.round().to(img.scalar_type()) : x;
}

}  // namespace graft::data
