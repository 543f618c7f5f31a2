// The zip container of torch.save files, read from a whole file in memory: the central
// directory (zip64 included) and where each record's bytes lie. PyTorch's reader skips CRC
// checks; graft verifies every record it loads (crc32 below).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace graft::zip {

struct Entry {
  std::uint32_t crc32 = 0;
  std::uint64_t size = 0;             // uncompressed
  std::uint64_t compressed_size = 0;
  std::uint64_t local_offset = 0;     // of the record's local header
  std::uint16_t method = 0;           // 0: stored (what torch.save writes), 8: deflated
};

/// The central directory of the zip archive held in file[0, size): each record by name.
/// Throws std::runtime_error when there is none or it is corrupt (truncated, not a zip).
std::map<std::string, Entry> read_directory(const std::uint8_t* file, std::uint64_t size);

/// Offset in the file of the record's first data byte (after its local header). Throws
/// std::runtime_error when the local header or the data lie outside the file.
std::uint64_t data_offset(const std::uint8_t* file, std::uint64_t size, const Entry& entry);

/// A deflated record (method 8) inflated with zlib: exactly entry.size bytes, or
/// std::runtime_error. Sizes deflate cannot reach from entry.compressed_size are refused
/// before anything is allocated.
std::vector<std::uint8_t> inflate(const std::uint8_t* file, std::uint64_t size, const Entry& entry);

/// zlib's CRC-32 of data[0, size), computed by up to `threads` threads (records of a few
/// MB and more are split; ISA-L's carry-less-multiply CRC where graft was built with it).
std::uint32_t crc32(const void* data, std::size_t size, int threads = 1);

}  // namespace graft::zip
