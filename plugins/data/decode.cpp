// PNG (libpng) and JPEG (libjpeg-turbo) decoding to uint8 (C, H, W); JPEGs in part and at
// reduced scale when a transform asks (LazyImage). Both libraries report
// errors by longjmp: every C++ object of a decoding function is constructed before its
// setjmp, so the jump skips no destructor; the error is thrown after the jump lands.
#include <png.h>
#include <csetjmp>
#include <cstdio>
// jpeglib.h needs size_t and FILE declared first.
#include <jpeglib.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "decode.h"

namespace graft::data {

namespace {

// PIL's decompression-bomb bound (2 x Image.MAX_IMAGE_PIXELS): a few bytes of header can
// claim 65500 x 65500 pixels, gigabytes to allocate before the data turns out to be missing.
constexpr std::int64_t kMaxPixels = 2 * 89'478'485;

void check_pixels(std::int64_t width, std::int64_t height, const std::string& path) {
  if (width * height > kMaxPixels)
    bad_file(path, std::to_string(width) + " x " + std::to_string(height) + " pixels, more than " +
                       std::to_string(kMaxPixels) + " (a decompression bomb?)");
}

struct PngReader {
  const std::vector<std::uint8_t>* bytes;
  std::size_t at;
  char message[200];
};

void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<PngReader*>(png_get_io_ptr(png));
  if (r->at + n > r->bytes->size()) png_error(png, "truncated PNG data");
  std::memcpy(out, r->bytes->data() + r->at, n);
  r->at += n;
}

void png_on_error(png_structp png, png_const_charp msg) {
  auto* r = static_cast<PngReader*>(png_get_error_ptr(png));
  std::snprintf(r->message, sizeof r->message, "%s", msg);
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}

torch::Tensor decode_png(const std::vector<std::uint8_t>& bytes, const std::string& path) {
  PngReader reader{&bytes, 0, {0}};
  torch::Tensor out;
  std::vector<png_bytep> rows;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, png_on_error, png_on_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    png_destroy_read_struct(&png, &info, nullptr);
    bad_file(path, "cannot allocate a PNG decoder");
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    bad_file(path, std::string("bad PNG: ") + reader.message);
  }
  png_set_read_fn(png, &reader, png_read_mem);
  png_read_info(png, info);
  {
    const auto w = static_cast<std::int64_t>(png_get_image_width(png, info));
    const auto h = static_cast<std::int64_t>(png_get_image_height(png, info));
    if (w * h > kMaxPixels) {
      png_destroy_read_struct(&png, &info, nullptr);
      check_pixels(w, h, path);
    }
  }
  const int color = png_get_color_type(png, info);
  const int depth = png_get_bit_depth(png, info);
  // Everything becomes 8-bit gray or RGB; transparency is dropped, as RGBA -> RGB does.
  if (depth == 16) png_set_strip_16(png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  // (palette expansion also turns a tRNS chunk into alpha, stripped here too)
  png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const auto width = static_cast<std::int64_t>(png_get_image_width(png, info));
  const auto height = static_cast<std::int64_t>(png_get_image_height(png, info));
  const auto channels = static_cast<std::int64_t>(png_get_channels(png, info));
  out = torch::empty({height, width, channels}, torch::kUInt8);
  rows.resize(static_cast<std::size_t>(height));
  for (std::int64_t y = 0; y < height; ++y) rows[static_cast<std::size_t>(y)] = out.data_ptr<std::uint8_t>() + y * width * channels;
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  auto chw = out.permute({2, 0, 1});
  if (channels == 2 || channels == 4) chw = chw.slice(0, 0, channels - 1);  // alpha that survived
  return chw.contiguous();
}

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_on_error(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

void jpeg_quiet(j_common_ptr) {}

/// Gray to RGB (repeated) or RGB to gray (PIL's convert("L")) as `mode` asks; else as it is.
torch::Tensor to_mode(const torch::Tensor& img, ColorMode mode) {
  if (mode == ColorMode::rgb && img.size(0) == 1) return img.expand({3, img.size(1), img.size(2)});
  if (mode == ColorMode::gray && img.size(0) == 3) {
    // L = R * 299/1000 + G * 587/1000 + B * 114/1000, in 16.16 fixed point
    auto f = img.to(torch::kInt32);
    auto l = (f[0] * 19595 + f[1] * 38470 + f[2] * 7471 + 0x8000).__rshift__(16);
    return l.to(torch::kUInt8).unsqueeze(0);
  }
  return img;
}

std::int64_t mode_channels(std::int64_t channels, ColorMode mode) {
  return mode == ColorMode::rgb ? 3 : mode == ColorMode::gray ? 1 : channels;
}

struct JpegHeader {
  std::int64_t height = 0, width = 0, components = 3;
  bool cmyk = false;
};

// Rows [row0, row1) of the JPEG decoded at scale num/8, columns [col0, col1) of them at least.
struct JpegWindow {
  int num = 8;
  std::int64_t row0 = 0, row1 = 0, col0 = 0, col1 = 0;
};

// The JPEG's header into `header`; with a window, the window decoded too: (H, W', C) uint8
// from column *first_col on (libjpeg widens a cropped window to its iMCU boundaries).
// Everything C++ is constructed before the setjmp (see the top of the file).
torch::Tensor read_jpeg(const std::vector<std::uint8_t>& bytes, const std::string& path, JpegHeader& header,
                        const JpegWindow* window = nullptr, std::int64_t* first_col = nullptr) {
  jpeg_decompress_struct cinfo{};
  JpegError err{};
  torch::Tensor out;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_on_error;
  err.mgr.output_message = jpeg_quiet;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    bad_file(path, std::string("bad JPEG: ") + err.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  header = {cinfo.image_height, cinfo.image_width, cinfo.num_components == 1 ? 1 : 3,
            cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK};
  if (window == nullptr) {
    jpeg_destroy_decompress(&cinfo);
    return out;
  }
  cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  cinfo.scale_num = static_cast<unsigned>(window->num);
  cinfo.scale_denom = 8;
  jpeg_start_decompress(&cinfo);
  const auto row0 = window->row0, row1 = std::min<std::int64_t>(window->row1, cinfo.output_height);
  JDIMENSION x = static_cast<JDIMENSION>(window->col0), w = static_cast<JDIMENSION>(window->col1 - window->col0);
  if (window->col0 > 0 || window->col1 < static_cast<std::int64_t>(cinfo.output_width)) jpeg_crop_scanline(&cinfo, &x, &w);
  *first_col = x;
  const auto width = static_cast<std::int64_t>(cinfo.output_width);  // the window's, after the crop
  const auto channels = static_cast<std::int64_t>(cinfo.output_components);
  out = torch::empty({row1 - row0, width, channels}, torch::kUInt8);
  if (row0 > 0) jpeg_skip_scanlines(&cinfo, static_cast<JDIMENSION>(row0));
  while (static_cast<std::int64_t>(cinfo.output_scanline) < row1) {
    JSAMPROW row = out.data_ptr<std::uint8_t>() + (static_cast<std::int64_t>(cinfo.output_scanline) - row0) * width * channels;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  // the rows below the window are never decoded
  if (cinfo.output_scanline < cinfo.output_height) jpeg_abort_decompress(&cinfo);
  else jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return out;
}

class JpegImage : public LazyImage {
 public:
  JpegImage(std::vector<std::uint8_t> bytes, std::string path, ColorMode mode)
      : bytes_(std::move(bytes)), path_(std::move(path)), mode_(mode) {
    read_jpeg(bytes_, path_, header_);
    check_pixels(header_.width, header_.height, path_);
    if (header_.cmyk) bad_file(path_, "bad JPEG: CMYK JPEG images are not supported");
  }

  std::vector<std::int64_t> shape() const override {
    return {mode_channels(header_.components, mode_), header_.height, header_.width};
  }

  Region decode(const Box& box, std::int64_t min_height, std::int64_t min_width) const override {
    // The smallest of libjpeg-turbo's SIMD scales (8/8, 4/8, 2/8, 1/8) that keeps the box at
    // least min_height x min_width: a downscale from there is still a downscale.
    int num = 8;
    while (num > 1 && box.height * (num / 2) >= 8.0 * static_cast<double>(min_height) &&
           box.width * (num / 2) >= 8.0 * static_cast<double>(min_width))
      num /= 2;
    const double s = num / 8.0;
    const auto scaled = [&](std::int64_t n) { return (n * num + 7) / 8; };  // libjpeg's output size
    const std::int64_t h = scaled(header_.height), w = scaled(header_.width);
    const auto lo = [](double v, std::int64_t n) { return std::clamp<std::int64_t>(static_cast<std::int64_t>(std::floor(v)), 0, n - 1); };
    const auto hi = [](double v, std::int64_t from, std::int64_t n) {
      return std::clamp<std::int64_t>(static_cast<std::int64_t>(std::ceil(v)), from + 1, n);
    };
    const std::int64_t r0 = lo(box.top * s, h), r1 = hi((box.top + box.height) * s, r0, h);
    const std::int64_t c0 = lo(box.left * s, w), c1 = hi((box.left + box.width) * s, c0, w);
    // One more column each side: libjpeg's fancy upsampling of a cropped window differs from
    // the whole image's in the window's edge columns only.
    std::int64_t first = 0;
    JpegHeader header;
    const JpegWindow window{num, r0, r1, std::max<std::int64_t>(c0 - 1, 0), std::min(c1 + 1, w)};
    const auto rows = read_jpeg(bytes_, path_, header, &window, &first);
    const auto chw = rows.slice(1, c0 - first, c1 - first).permute({2, 0, 1});
    return {to_mode(chw, mode_), Box{box.top * s - static_cast<double>(r0), box.left * s - static_cast<double>(c0),
                                     box.height * s, box.width * s}};
  }

 private:
  std::vector<std::uint8_t> bytes_;
  std::string path_;
  ColorMode mode_;
  JpegHeader header_;
};

// A format without partial decoding (PNG): decoded whole when opened; regions are views.
class DecodedImage : public LazyImage {
 public:
  explicit DecodedImage(torch::Tensor image) : image_(std::move(image)) {}
  std::vector<std::int64_t> shape() const override { return image_.sizes().vec(); }
  Region decode(const Box& box, std::int64_t, std::int64_t) const override {
    const auto h = image_.size(1), w = image_.size(2);
    const auto r0 = std::clamp<std::int64_t>(static_cast<std::int64_t>(std::floor(box.top)), 0, h - 1);
    const auto c0 = std::clamp<std::int64_t>(static_cast<std::int64_t>(std::floor(box.left)), 0, w - 1);
    const auto r1 = std::clamp<std::int64_t>(static_cast<std::int64_t>(std::ceil(box.top + box.height)), r0 + 1, h);
    const auto c1 = std::clamp<std::int64_t>(static_cast<std::int64_t>(std::ceil(box.left + box.width)), c0 + 1, w);
    return {image_.slice(1, r0, r1).slice(2, c0, c1),
            Box{box.top - static_cast<double>(r0), box.left - static_cast<double>(c0), box.height, box.width}};
  }

 private:
  torch::Tensor image_;
};

}  // namespace

std::shared_ptr<const LazyImage> open_image(const std::string& path, ColorMode mode) {
  auto bytes = read_file(path);
  static const std::uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), png_magic, 8) == 0)
    return std::make_shared<DecodedImage>(to_mode(decode_png(bytes, path), mode).contiguous());
  if (bytes.size() >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff)
    return std::make_shared<JpegImage>(std::move(bytes), path, mode);
  bad_file(path, "neither a PNG nor a JPEG file");
}

torch::Tensor decode_image(const std::string& path, ColorMode mode) { return open_image(path, mode)->decode_all(); }

}  // namespace graft::data
