// Image files to tensors: PNG and JPEG (recognised by their first bytes), 8-bit.
#pragma once

#include "common.h"

namespace graft::data {

enum class ColorMode {
  keep,  ///< gray stays 1 channel, colour is 3 (alpha dropped, palettes expanded)
  rgb,   ///< 3 channels (gray repeated)
  gray,  ///< 1 channel (colour converted as PIL's convert("L"))
};

/// The image at `path`, not decoded yet: a JPEG is read and its header checked, and
/// decode() decodes only the rows and columns asked for (libjpeg-turbo's partial decoding)
/// at the scale asked for (its DCT scaling: 1/8, 1/4, 1/2); a PNG is decoded whole here. A
/// missing, unreadable or corrupt file is a usage error naming it (now or at decode()).
std::shared_ptr<const LazyImage> open_image(const std::string& path, ColorMode mode);

/// The image at `path` as uint8 (C, H, W), contiguous: open_image(path, mode)->decode_all().
torch::Tensor decode_image(const std::string& path, ColorMode mode);

}  // namespace graft::data
