// A minimal PNG writer: one IDAT of zlib-deflated scanlines (filter 0), CRC-32 per chunk.
// Readers (browsers, PIL) need nothing more; libpng stays the data plugins' dependency.
#include "graft/host/png.h"

#include <zlib.h>

#include <torch/torch.h>

#include <fstream>

#include "graft/error.h"

namespace graft {

namespace {

void put_u32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

void chunk(std::string& out, const char* type, const std::string& data) {
  put_u32(out, static_cast<std::uint32_t>(data.size()));
  const std::string body = std::string(type, 4) + data;
  out += body;
  put_u32(out, static_cast<std::uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()))));
}

}  // namespace

std::string encode_png(const torch::Tensor& image) {
  if (!image.defined() || image.dim() != 3 || image.scalar_type() != torch::kUInt8 ||
      (image.size(0) != 1 && image.size(0) != 3) || image.size(1) < 1 || image.size(2) < 1)
    throw Error::runtime("encode_png: expected a uint8 (1 or 3, H, W) image, got " +
                         (image.defined() ? std::string(image.toString()) + " " + c10::str(image.sizes()) : "nothing"));
  const auto hwc = image.to(torch::kCPU).permute({1, 2, 0}).contiguous();
  const auto c = image.size(0), h = image.size(1), w = image.size(2);
  const std::size_t row = static_cast<std::size_t>(w * c);
  std::string raw;
  raw.reserve(static_cast<std::size_t>(h) * (row + 1));
  const auto* px = reinterpret_cast<const char*>(hwc.data_ptr<std::uint8_t>());
  for (std::int64_t y = 0; y < h; ++y) {
    raw.push_back('\0');  // filter: none
    raw.append(px + static_cast<std::size_t>(y) * row, row);
  }
  uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
  std::string packed(packed_size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(packed.data()), &packed_size, reinterpret_cast<const Bytef*>(raw.data()),
                static_cast<uLong>(raw.size()), 6) != Z_OK)
    throw Error::runtime("encode_png: zlib failed");
  packed.resize(packed_size);

  std::string out("\x89PNG\r\n\x1a\n", 8);
  std::string header;
  put_u32(header, static_cast<std::uint32_t>(w));
  put_u32(header, static_cast<std::uint32_t>(h));
  header += std::string{8, static_cast<char>(c == 1 ? 0 : 2), 0, 0, 0};  // depth 8, gray or RGB
  chunk(out, "IHDR", header);
  chunk(out, "IDAT", packed);
  chunk(out, "IEND", "");
  return out;
}

void write_png(const torch::Tensor& image, const std::string& path) {
  const std::string bytes = encode_png(image);
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  if (!out.flush()) throw Error::runtime(path + ": cannot write");
}

std::string base64(const std::string& bytes) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16 |
                            static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8 |
                            static_cast<unsigned char>(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(table[(v >> s) & 63]);
  }
  if (i < bytes.size()) {
    std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out.push_back(table[(v >> 18) & 63]);
    out.push_back(table[(v >> 12) & 63]);
    out.push_back(i + 1 < bytes.size() ? table[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::string png_data_uri(const torch::Tensor& image) { return "data:image/png;base64," + base64(encode_png(image)); }

}  // namespace graft
