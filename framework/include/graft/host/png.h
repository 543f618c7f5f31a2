// Pictures for people: 8-bit PNG encoding (what feature-map grids, overlays and the run
// report's thumbnails are written as) and base64 for data: URIs in self-contained HTML.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

namespace graft {

/// A PNG file's bytes for `image`: uint8 (C, H, W) with C = 1 (gray) or 3 (RGB), any
/// device or layout. Throws a runtime error for another shape or type.
std::string encode_png(const torch::Tensor& image);

/// Writes encode_png(image) to `path`.
void write_png(const torch::Tensor& image, const std::string& path);

/// RFC 4648 base64 of `bytes`.
std::string base64(const std::string& bytes);

/// "data:image/png;base64,..." of `image`.
std::string png_data_uri(const torch::Tensor& image);

}  // namespace graft
