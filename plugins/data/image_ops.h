// The geometry of the transforms as pure functions on (C, H, W) tensors, each written to
// give what torchvision.transforms.functional gives on a tensor (torchvision 0.14).
#pragma once

#include <torch/torch.h>

#include <graft/data.h>

#include <cstdint>
#include <string>
#include <vector>

namespace graft::data {

enum class PadMode { constant, edge, reflect, symmetric };
enum class Interp { nearest, bilinear };

/// F.pad(img, [left, top, right, bottom], fill, mode).
torch::Tensor pad(const torch::Tensor& img, std::int64_t left, std::int64_t top, std::int64_t right,
                  std::int64_t bottom, PadMode mode, double fill);
/// F.crop: a window that leaves the image is filled with zeros.
torch::Tensor crop(const torch::Tensor& img, std::int64_t top, std::int64_t left, std::int64_t height,
                   std::int64_t width);
/// F.center_crop: pads with zeros first when the crop is larger than the image.
torch::Tensor center_crop(const torch::Tensor& img, std::int64_t height, std::int64_t width);
/// F.resize to exactly (height, width), antialias off unless asked (bilinear only, as
/// torchvision); uint8 is resized in float32 and rounded back.
torch::Tensor resize(const torch::Tensor& img, std::int64_t height, std::int64_t width, Interp interp,
                     bool antialias = false);
/// F.resize(..., antialias=True) of the region `box` of img, bilinear: PIL's triangle filter
/// widened by the downscale factor (torchvision's tensor antialiasing is a port of it), cut
/// and renormalised at the image's edges. img is (C, H, W), uint8 or float, any strides
/// (an HWC decoder buffer seen as CHW is read in place); the result is (C, height, width),
/// contiguous, of img's dtype (uint8 rounded, halves to even). `box` may be fractional and
/// lie anywhere in img: a region of an image decoded at reduced scale.
torch::Tensor resize_aa(const torch::Tensor& img, const graft::Box& box, std::int64_t height, std::int64_t width);
/// torchvision's size for resize(size=[shorter]): the shorter side becomes `shorter`.
std::vector<std::int64_t> resized_hw(std::int64_t height, std::int64_t width, std::int64_t shorter);
/// F.rotate(img, degrees) counter-clockwise about the centre, expand=False; `fill` per
/// channel (one value: all channels).
torch::Tensor rotate(const torch::Tensor& img, double degrees, Interp interp, const std::vector<double>& fill);

/// A dtype as Python prints it (uint8, float32), for messages.
inline std::string dtype_name(c10::ScalarType t) {
  if (t == c10::kByte) return "uint8";
  if (t == c10::kFloat) return "float32";
  if (t == c10::kDouble) return "float64";
  return c10::toString(t);
}

/// Python's round(): halves to even.
std::int64_t round_half_even(double v);

}  // namespace graft::data
