// The central directory of a zip archive: each record's name, CRC-32 and size. PyTorch's
// reader skips CRC checks, so graft reads them here and verifies every record it loads.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace graft::zip {

struct Entry {
  std::uint32_t crc32 = 0;
  std::uint64_t size = 0;
};

/// Reads the central directory of the zip file at `path` (zip64 included).
/// Throws std::runtime_error when there is none (truncated or not a zip).
std::map<std::string, Entry> read_index(const std::string& path);

std::uint32_t crc32(const void* data, std::size_t size);

}  // namespace graft::zip
