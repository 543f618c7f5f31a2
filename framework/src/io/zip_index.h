// The zip container of torch.save files, read from a whole file in memory: the central
// directory (zip64 included) and where each record's bytes lie. PyTorch's reader skips CRC
// checks; graft verifies every record it loads (crc32 below).
#pragma once

#include <cstdint>
#include <functional>
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

/// Where the central directory of the zip archive in file[0, size) begins, read from the
/// end-of-directory records only (the last 64 KB or so of the file). Throws as read_directory.
std::uint64_t directory_offset(const std::uint8_t* file, std::uint64_t size);

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

/// A byte range [begin, end) of a buffer.
struct Span {
  std::uint64_t begin = 0, end = 0;
};

/// zlib's CRC-32 of each span of `data`, computed by up to `threads` threads: the spans
/// are cut into pieces of about a megabyte that the threads share, and each span's CRC is
/// joined from its pieces' (ISA-L's carry-less-multiply CRC where graft was built with it).
/// `fill`, when given, is called with each piece before its CRC is taken, on the thread
/// that takes it: a reader fills the buffer piece by piece and each piece is checked while
/// it is still in the cache.
std::vector<std::uint32_t> crc32(const std::uint8_t* data, const std::vector<Span>& spans, int threads = 1,
                                 const std::function<void(const Span&)>& fill = {});

/// zlib's CRC-32 of data[0, size): crc32() of one span.
std::uint32_t crc32(const void* data, std::size_t size, int threads = 1);

/// Runs fn(0) .. fn(n - 1) on n threads (the caller's and n - 1 helpers), joins them, and
/// rethrows the first exception one of them threw.
void on_threads(int n, const std::function<void(int)>& fn);

}  // namespace graft::zip
