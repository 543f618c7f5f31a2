// PNG (libpng) and JPEG (libjpeg) decoding to uint8 (C, H, W). Both libraries report
// errors by longjmp: every C++ object of a decoding function is constructed before its
// setjmp, so the jump skips no destructor; the error is thrown after the jump lands.
#include <png.h>
#include <csetjmp>
#include <cstdio>
// jpeglib.h needs size_t and FILE declared first.
#include <jpeglib.h>

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

torch::Tensor decode_jpeg(const std::vector<std::uint8_t>& bytes, const std::string& path) {
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
  if (static_cast<std::int64_t>(cinfo.image_width) * cinfo.image_height > kMaxPixels) {
    jpeg_destroy_decompress(&cinfo);
    check_pixels(cinfo.image_width, cinfo.image_height, path);
  }
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    std::snprintf(err.message, sizeof err.message, "CMYK JPEG images are not supported");
    std::longjmp(err.jump, 1);
  }
  cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  const auto width = static_cast<std::int64_t>(cinfo.output_width);
  const auto height = static_cast<std::int64_t>(cinfo.output_height);
  const auto channels = static_cast<std::int64_t>(cinfo.output_components);
  out = torch::empty({height, width, channels}, torch::kUInt8);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out.data_ptr<std::uint8_t>() + static_cast<std::int64_t>(cinfo.output_scanline) * width * channels;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return out.permute({2, 0, 1}).contiguous();
}

}  // namespace

torch::Tensor decode_image(const std::string& path, ColorMode mode) {
  const auto bytes = read_file(path);
  static const std::uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  torch::Tensor img;
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), png_magic, 8) == 0) {
    img = decode_png(bytes, path);
  } else if (bytes.size() >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff) {
    img = decode_jpeg(bytes, path);
  } else {
    bad_file(path, "neither a PNG nor a JPEG file");
  }
  if (mode == ColorMode::rgb && img.size(0) == 1) return img.repeat({3, 1, 1});
  if (mode == ColorMode::gray && img.size(0) == 3) {
    // PIL's convert("L"): L = R * 299/1000 + G * 587/1000 + B * 114/1000, in 16.16 fixed point.
    auto f = img.to(torch::kInt32);
    auto l = (f[0] * 19595 + f[1] * 38470 + f[2] * 7471 + 0x8000).__rshift__(16);
    return l.to(torch::kUInt8).unsqueeze(0);
  }
  return img;
}

}  // namespace graft::data
