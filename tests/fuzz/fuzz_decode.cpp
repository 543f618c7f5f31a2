// The image folder's PNG / JPEG decoding (libpng, libjpeg) in each colour mode.
#include "decode.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using graft::data::ColorMode;
  const std::string path = graft::fuzz::write_file("input.img", data, size);
  for (const ColorMode mode : {ColorMode::keep, ColorMode::rgb, ColorMode::gray}) {
    graft::fuzz::expect_clean([&] {
      const auto img = graft::data::decode_image(path, mode);
      const auto c = img.size(0);
      if (img.dim() != 3 || img.scalar_type() != torch::kUInt8 || (mode == ColorMode::rgb && c != 3) ||
          (mode == ColorMode::gray && c != 1) || (c != 1 && c != 3)) {
        std::fprintf(stderr, "fuzz_decode: unexpected image %s\n", img.toString().c_str());
        std::abort();
      }
    });
  }
  return 0;
}
