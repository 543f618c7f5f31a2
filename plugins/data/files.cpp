#include <sys/stat.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "common.h"

namespace graft::data {

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<std::uint8_t> read_plain(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) bad_file(path, std::string("cannot open: ") + std::strerror(errno));
  const auto size = static_cast<std::size_t>(in.tellg());
  std::vector<std::uint8_t> bytes(size);
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
    bad_file(path, "read error");
  return bytes;
}

std::vector<std::uint8_t> read_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) bad_file(path, std::string("cannot open: ") + std::strerror(errno));
  gzbuffer(f, 1 << 17);
  std::vector<std::uint8_t> bytes;
  std::size_t used = 0;
  for (;;) {
    if (bytes.size() - used < (1u << 20)) bytes.resize(used + (1u << 22));
    const int n = gzread(f, bytes.data() + used, static_cast<unsigned>(bytes.size() - used));
    if (n < 0) break;
    if (n == 0) break;
    used += static_cast<std::size_t>(n);
  }
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  const std::string text = msg ? msg : "";
  gzclose(f);
  // A stream cut short reads as Z_BUF_ERROR ("unexpected end of file").
  if (err != Z_OK && err != Z_STREAM_END)
    bad_file(path, "not a valid gzip file (" + (text.empty() ? std::string("zlib error") : text) + ")");
  bytes.resize(used);
  return bytes;
}

}  // namespace

std::vector<std::uint8_t> read_file(const std::string& path) {
  return ends_with(path, ".gz") ? read_gz(path) : read_plain(path);
}

}  // namespace graft::data
