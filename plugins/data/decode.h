// Image files to tensors: PNG and JPEG (recognised by their first bytes), 8-bit.
#pragma once

#include "common.h"

namespace graft::data {

enum class ColorMode {
  keep,  ///< gray stays 1 channel, colour is 3 (alpha dropped, palettes expanded)
  rgb,   ///< 3 channels (gray repeated)
  gray,  ///< 1 channel (colour converted as PIL's convert("L"))
};

/// The image at `path` as uint8 (C, H, W). A missing, unreadable or corrupt file is a
/// usage error naming it.
torch::Tensor decode_image(const std::string& path, ColorMode mode);

}  // namespace graft::data
