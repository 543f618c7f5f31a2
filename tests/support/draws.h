// The draws of random_resized_crop (torchvision's RandomResizedCrop.get_params, made with
// graft's Rng), replayed by the tests that check its crops against Python.
#pragma once

#include <cmath>
#include <cstdint>

#include "graft/data.h"

namespace graft::test {

struct CropBox {
  std::int64_t top = -1, left = 0, height = 0, width = 0;  ///< top -1: no attempt fitted
};

/// The crop of an H x W image for the default scale (0.08, 1) and ratio (3/4, 4/3): the
/// first of 10 attempts that fits.
inline CropBox resized_crop_box(std::int64_t H, std::int64_t W, graft::Rng& rng) {
  CropBox b;
  for (int k = 0; k < 10 && b.top < 0; ++k) {
    const double area = static_cast<double>(H * W) * rng.uniform(0.08, 1.0);
    const double aspect = std::exp(rng.uniform(std::log(3. / 4), std::log(4. / 3)));
    const auto w = static_cast<std::int64_t>(std::nearbyint(std::sqrt(area * aspect)));
    const auto h = static_cast<std::int64_t>(std::nearbyint(std::sqrt(area / aspect)));
    if (0 < w && w <= W && 0 < h && h <= H) b = {rng.integer(0, H - h), 0, h, w}, b.left = rng.integer(0, W - w);
  }
  return b;
}

}  // namespace graft::test
