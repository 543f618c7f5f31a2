#include "zip_index.h"

#include <zlib.h>

#include <cstring>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace graft::zip {

namespace {
template <class U> U le(const char* p) {
  U v;
  std::memcpy(&v, p, sizeof(U));
  return v;
}
}  // namespace

std::uint32_t crc32(const void* data, std::size_t size) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  const auto* p = static_cast<const Bytef*>(data);
  while (size > 0) {
    const auto chunk = static_cast<uInt>(std::min<std::size_t>(size, 1u << 30));
    crc = ::crc32(crc, p, chunk);
    p += chunk;
    size -= chunk;
  }
  return static_cast<std::uint32_t>(crc);
}

std::map<std::string, Entry> read_index(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot be opened");
  const auto file_size = static_cast<std::uint64_t>(in.tellg());
  // The end-of-central-directory record sits in the last 22 + 65535 bytes.
  const std::uint64_t tail_size = std::min<std::uint64_t>(file_size, 22 + 65535);
  std::vector<char> tail(tail_size);
  in.seekg(static_cast<std::streamoff>(file_size - tail_size));
  in.read(tail.data(), static_cast<std::streamsize>(tail_size));
  std::int64_t eocd = -1;
  for (std::int64_t i = static_cast<std::int64_t>(tail_size) - 22; i >= 0; --i) {
    if (le<std::uint32_t>(&tail[static_cast<std::size_t>(i)]) == 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw std::runtime_error("the zip directory is missing (truncated file?)");
  const char* e = &tail[static_cast<std::size_t>(eocd)];
  std::uint64_t count = le<std::uint16_t>(e + 10);
  std::uint64_t cd_size = le<std::uint32_t>(e + 12);
  std::uint64_t cd_offset = le<std::uint32_t>(e + 16);
  if (cd_offset == 0xFFFFFFFF || count == 0xFFFF) {
    // zip64: the locator precedes the EOCD and points at the zip64 EOCD record
    if (eocd < 20) throw std::runtime_error("the zip64 directory locator is missing");
    const char* loc = e - 20;
    if (le<std::uint32_t>(loc) != 0x07064b50) throw std::runtime_error("the zip64 directory locator is corrupt");
    const auto z64 = le<std::uint64_t>(loc + 8);
    char rec[56];
    in.seekg(static_cast<std::streamoff>(z64));
    if (!in.read(rec, 56) || le<std::uint32_t>(rec) != 0x06064b50)
      throw std::runtime_error("the zip64 directory is corrupt");
    count = le<std::uint64_t>(rec + 32);
    cd_size = le<std::uint64_t>(rec + 40);
    cd_offset = le<std::uint64_t>(rec + 48);
  }
  if (cd_offset + cd_size > file_size) throw std::runtime_error("the zip directory points past the end of the file");
  std::vector<char> cd(cd_size);
  in.seekg(static_cast<std::streamoff>(cd_offset));
  if (!in.read(cd.data(), static_cast<std::streamsize>(cd_size))) throw std::runtime_error("the zip directory cannot be read");

  std::map<std::string, Entry> out;
  std::size_t p = 0;
  for (std::uint64_t k = 0; k < count; ++k) {
    if (p + 46 > cd.size() || le<std::uint32_t>(&cd[p]) != 0x02014b50) throw std::runtime_error("the zip directory is corrupt");
    Entry entry;
    entry.crc32 = le<std::uint32_t>(&cd[p + 16]);
    entry.size = le<std::uint32_t>(&cd[p + 24]);
    const std::size_t name_len = le<std::uint16_t>(&cd[p + 28]);
    const std::size_t extra_len = le<std::uint16_t>(&cd[p + 30]);
    const std::size_t comment_len = le<std::uint16_t>(&cd[p + 32]);
    if (p + 46 + name_len + extra_len + comment_len > cd.size()) throw std::runtime_error("the zip directory is corrupt");
    out[std::string(&cd[p + 46], name_len)] = entry;
    p += 46 + name_len + extra_len + comment_len;
  }
  return out;
}

}  // namespace graft::zip
