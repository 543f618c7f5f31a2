#include "io/zip_index.h"

#include <zlib.h>
#ifdef GRAFT_HAS_ISAL
#include <isa-l/crc.h>
#endif

#include <algorithm>
#include <atomic>
#include <exception>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace graft::zip {

namespace {
template <class U> U le(const std::uint8_t* p) {
  U v;
  std::memcpy(&v, p, sizeof(U));
  return v;
}
[[noreturn]] void corrupt(const std::string& what) { throw std::runtime_error(what); }
}  // namespace

namespace {

// One thread's CRC-32 (zlib's polynomial and conventions): ISA-L's folding with carry-less
// multiply where graft was built with it (several GB/s), else zlib's tables.
std::uint32_t crc32_serial(const std::uint8_t* p, std::size_t size) {
#ifdef GRAFT_HAS_ISAL
  return ::crc32_gzip_refl(0, p, size);
#else
  uLong crc = ::crc32(0L, Z_NULL, 0);
  while (size > 0) {
    const auto chunk = static_cast<uInt>(std::min<std::size_t>(size, 1u << 30));
    crc = ::crc32(crc, p, chunk);
    p += chunk;
    size -= chunk;
  }
  return static_cast<std::uint32_t>(crc);
#endif
}

}  // namespace

void on_threads(int n, const std::function<void(int)>& fn) {
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(std::max(n, 1)));
  const auto guarded = [&](int t) {
    try {
      fn(t);
    } catch (...) {
      errors[static_cast<std::size_t>(t)] = std::current_exception();
    }
  };
  std::vector<std::thread> helpers;
  for (int t = 1; t < n; ++t) helpers.emplace_back(guarded, t);
  guarded(0);
  for (auto& h : helpers) h.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

std::vector<std::uint32_t> crc32(const std::uint8_t* data, const std::vector<Span>& spans, int threads,
                                 const std::function<void(const Span&)>& fill) {
  // Pieces of about a megabyte: small enough to share out evenly, large enough that
  // joining them (zlib's crc32_combine) costs nothing next to them.
  constexpr std::uint64_t kPiece = std::uint64_t{1} << 20;
  struct Piece {
    std::size_t span;
    std::uint64_t begin, end;
    std::uint32_t crc;
  };
  std::vector<Piece> pieces;
  std::uint64_t total = 0;
  for (std::size_t k = 0; k < spans.size(); ++k) {
    const auto [begin, end] = spans[k];
    total += end - begin;
    const std::uint64_t parts = std::max<std::uint64_t>((end - begin + kPiece / 2) / kPiece, 1);
    for (std::uint64_t i = 0; i < parts; ++i)
      pieces.push_back({k, begin + (end - begin) * i / parts, begin + (end - begin) * (i + 1) / parts, 0});
  }
  // Below a few MB in all, a thread costs more than it saves.
  const int n = static_cast<int>(std::min<std::uint64_t>(std::max(threads, 1), std::max<std::uint64_t>(total / (4 * kPiece), 1)));
  std::atomic<std::size_t> next{0};
  on_threads(n, [&](int) {
    for (std::size_t i = next++; i < pieces.size(); i = next++) {
      if (fill) fill(Span{pieces[i].begin, pieces[i].end});
      pieces[i].crc = crc32_serial(data + pieces[i].begin, pieces[i].end - pieces[i].begin);
    }
  });
  std::vector<std::uint32_t> out(spans.size());
  std::vector<bool> started(spans.size(), false);
  for (const auto& p : pieces) {
    auto& crc = out[p.span];
    crc = started[p.span] ? static_cast<std::uint32_t>(::crc32_combine(crc, p.crc, static_cast<z_off_t>(p.end - p.begin))) : p.crc;
    started[p.span] = true;
  }
  return out;
}

std::uint32_t crc32(const void* data, std::size_t size, int threads) {
  return crc32(static_cast<const std::uint8_t*>(data), {Span{0, size}}, threads).front();
}

namespace {

struct Directory {
  std::uint64_t count = 0, size = 0, offset = 0;
};

Directory find_directory(const std::uint8_t* file, std::uint64_t size) {
  // The end-of-central-directory record sits in the last 22 + 65535 bytes.
  if (size < 22) corrupt("the zip directory is missing (truncated file?)");
  const std::uint64_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
  std::uint64_t eocd = size - 22;
  while (le<std::uint32_t>(file + eocd) != 0x06054b50) {
    if (eocd == lowest) corrupt("the zip directory is missing (truncated file?)");
    --eocd;
  }
  const std::uint8_t* e = file + eocd;
  std::uint64_t count = le<std::uint16_t>(e + 10);
  std::uint64_t cd_size = le<std::uint32_t>(e + 12);
  std::uint64_t cd_offset = le<std::uint32_t>(e + 16);
  if (cd_offset == 0xFFFFFFFF || count == 0xFFFF || cd_size == 0xFFFFFFFF) {
    // zip64: the locator precedes the EOCD and points at the zip64 EOCD record
    if (eocd < 20) corrupt("the zip64 directory locator is missing");
    const std::uint8_t* loc = e - 20;
    if (le<std::uint32_t>(loc) != 0x07064b50) corrupt("the zip64 directory locator is corrupt");
    const auto z64 = le<std::uint64_t>(loc + 8);
    if (z64 > size || size - z64 < 56 || le<std::uint32_t>(file + z64) != 0x06064b50)
      corrupt("the zip64 directory is corrupt");
    count = le<std::uint64_t>(file + z64 + 32);
    cd_size = le<std::uint64_t>(file + z64 + 40);
    cd_offset = le<std::uint64_t>(file + z64 + 48);
  }
  if (cd_offset > size || cd_size > size - cd_offset) corrupt("the zip directory points past the end of the file");
  return {count, cd_size, cd_offset};
}

}  // namespace

std::uint64_t directory_offset(const std::uint8_t* file, std::uint64_t size) { return find_directory(file, size).offset; }

std::map<std::string, Entry> read_directory(const std::uint8_t* file, std::uint64_t size) {
  const auto [count, cd_size, cd_offset] = find_directory(file, size);
  const std::uint8_t* cd = file + cd_offset;
  std::map<std::string, Entry> out;
  std::uint64_t p = 0;
  for (std::uint64_t k = 0; k < count; ++k) {
    if (cd_size - p < 46 || le<std::uint32_t>(cd + p) != 0x02014b50) corrupt("the zip directory is corrupt");
    Entry entry;
    entry.method = le<std::uint16_t>(cd + p + 10);
    entry.crc32 = le<std::uint32_t>(cd + p + 16);
    entry.compressed_size = le<std::uint32_t>(cd + p + 20);
    entry.size = le<std::uint32_t>(cd + p + 24);
    const std::size_t name_len = le<std::uint16_t>(cd + p + 28);
    const std::size_t extra_len = le<std::uint16_t>(cd + p + 30);
    const std::size_t comment_len = le<std::uint16_t>(cd + p + 32);
    entry.local_offset = le<std::uint32_t>(cd + p + 42);
    if (cd_size - p - 46 < name_len + extra_len + comment_len) corrupt("the zip directory is corrupt");
    // zip64 extra field (id 1): 8-byte values for the fields that hold 0xFFFFFFFF, in order
    const std::uint8_t* x = cd + p + 46 + name_len;
    for (std::size_t q = 0; q + 4 <= extra_len;) {
      const auto id = le<std::uint16_t>(x + q), len = le<std::uint16_t>(x + q + 2);
      if (q + 4 + len > extra_len) corrupt("the zip directory is corrupt");
      if (id == 1) {
        std::size_t at = q + 4;
        auto wide = [&](std::uint64_t& field) {
          if (field != 0xFFFFFFFF) return;
          if (at + 8 > q + 4 + len) corrupt("the zip64 extra field is corrupt");
          field = le<std::uint64_t>(x + at);
          at += 8;
        };
        wide(entry.size);
        wide(entry.compressed_size);
        wide(entry.local_offset);
      }
      q += 4 + len;
    }
    out[std::string(reinterpret_cast<const char*>(cd + p + 46), name_len)] = entry;
    p += 46 + name_len + extra_len + comment_len;
  }
  return out;
}

std::uint64_t data_offset(const std::uint8_t* file, std::uint64_t size, const Entry& entry) {
  const std::uint64_t h = entry.local_offset;
  if (h > size || size - h < 30 || le<std::uint32_t>(file + h) != 0x04034b50) corrupt("a record's local header is corrupt");
  const std::uint64_t data = h + 30 + le<std::uint16_t>(file + h + 26) + le<std::uint16_t>(file + h + 28);
  if (data > size || size - data < entry.compressed_size) corrupt("a record reaches past the end of the file (truncated?)");
  return data;
}

std::vector<std::uint8_t> inflate(const std::uint8_t* file, std::uint64_t size, const Entry& entry) {
  if (entry.method != 8) corrupt("a record is compressed with zip method " + std::to_string(entry.method) + " (only stored and deflated records are read)");
  const std::uint64_t at = data_offset(file, size, entry);
  // deflate expands at most 1032:1; a larger claim is a corrupt directory, not a reason to allocate
  if (entry.size / 1032 > entry.compressed_size + 1) corrupt("a deflated record claims an impossible size (corrupt file)");
  std::vector<std::uint8_t> out(static_cast<std::size_t>(entry.size));
  z_stream z{};
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) corrupt("zlib cannot be initialised");
  const std::uint8_t* in = file + at;
  std::uint64_t in_left = entry.compressed_size, out_done = 0;
  std::uint8_t empty = 0;
  int rc = Z_OK;
  while (rc == Z_OK) {
    const auto in_chunk = static_cast<uInt>(std::min<std::uint64_t>(in_left, 1u << 30));
    const auto out_chunk = static_cast<uInt>(std::min<std::uint64_t>(entry.size - out_done, 1u << 30));
    z.next_in = const_cast<Bytef*>(in);
    z.avail_in = in_chunk;
    z.next_out = out.empty() ? &empty : out.data() + out_done;  // zlib refuses a null next_out
    z.avail_out = out_chunk;
    rc = ::inflate(&z, Z_NO_FLUSH);
    in += in_chunk - z.avail_in;
    in_left -= in_chunk - z.avail_in;
    out_done += out_chunk - z.avail_out;
    if (rc == Z_OK && z.avail_in == in_chunk && z.avail_out == out_chunk) rc = Z_BUF_ERROR;  // no progress
  }
  inflateEnd(&z);
  if (rc != Z_STREAM_END || out_done != entry.size) corrupt("a deflated record is corrupt or has another size than its directory entry says");
  return out;
}

}  // namespace graft::zip
