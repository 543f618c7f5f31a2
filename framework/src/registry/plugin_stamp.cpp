#include "registry/plugin_stamp.h"

#include <elf.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <functional>

#include "graft/plugin.h"

namespace graft::detail {

namespace {

constexpr char section_name[] = ".graft_abi";
// A section-name table larger than this is not a shared library's.
constexpr std::uint64_t max_name_table = std::uint64_t{1} << 24;

// Reads [offset, offset + size) of the file into `out`; false when it is not all there.
using ReadAt = std::function<bool(std::uint64_t offset, std::uint64_t size, void* out)>;

bool within(std::uint64_t offset, std::uint64_t size, std::uint64_t file_size) {
  return offset <= file_size && size <= file_size - offset;
}

// A fixed-size text field: NUL-terminated inside the field, or nothing.
std::optional<std::string> field(const char* text, std::size_t capacity) {
  const std::size_t n = strnlen(text, capacity);
  if (n == capacity) return std::nullopt;
  return std::string(text, n);
}

std::optional<StampVersions> parse(std::uint64_t file_size, const ReadAt& read, std::string& error) {
  const auto corrupt = [&](const char* what) {
    error = std::string("truncated or corrupt ELF file (") + what + ")";
    return std::nullopt;
  };
  Elf64_Ehdr eh{};
  if (file_size < EI_NIDENT || !read(0, EI_NIDENT, eh.e_ident) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
    error = "not a shared library (no ELF header)";
    return std::nullopt;
  }
  constexpr unsigned char host_data = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB;
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != host_data) {
    error = "built for another kind of machine (not a 64-bit ELF file of this byte order)";
    return std::nullopt;
  }
  if (!read(0, sizeof eh, &eh)) return corrupt("incomplete ELF header");
  if (eh.e_shoff == 0) return corrupt("no section headers");
  if (eh.e_shentsize < sizeof(Elf64_Shdr)) return corrupt("bad section header size");

  const auto header = [&](std::uint64_t index, Elf64_Shdr& sh) {
    return index <= (file_size - std::min<std::uint64_t>(file_size, eh.e_shoff)) / eh.e_shentsize &&
           within(eh.e_shoff + index * eh.e_shentsize, sizeof sh, file_size) &&
           read(eh.e_shoff + index * eh.e_shentsize, sizeof sh, &sh);
  };
  // More than 0xff00 sections or a large name-table index move into section header 0.
  std::uint64_t count = eh.e_shnum;
  std::uint64_t names_index = eh.e_shstrndx;
  if (count == 0 || names_index == SHN_XINDEX) {
    Elf64_Shdr first{};
    if (!header(0, first)) return corrupt("section headers past the end of the file");
    if (count == 0) count = first.sh_size;
    if (names_index == SHN_XINDEX) names_index = first.sh_link;
  }
  if (count == 0 || count > file_size / eh.e_shentsize || !within(eh.e_shoff, count * eh.e_shentsize, file_size))
    return corrupt("section headers past the end of the file");
  if (names_index >= count) return corrupt("bad section name table index");

  Elf64_Shdr names_header{};
  if (!header(names_index, names_header)) return corrupt("section headers past the end of the file");
  if (names_header.sh_type == SHT_NOBITS || names_header.sh_size > max_name_table ||
      !within(names_header.sh_offset, names_header.sh_size, file_size))
    return corrupt("section name table past the end of the file");
  std::string names(names_header.sh_size, '\0');
  if (!read(names_header.sh_offset, names.size(), names.data())) return corrupt("unreadable section name table");

  for (std::uint64_t i = 0; i < count; ++i) {
    Elf64_Shdr sh{};
    if (!header(i, sh)) return corrupt("section headers past the end of the file");
    if (sh.sh_name >= names.size()) continue;
    const std::string_view name(names.data() + sh.sh_name, strnlen(names.data() + sh.sh_name, names.size() - sh.sh_name));
    if (name != section_name) continue;
    if (sh.sh_type == SHT_NOBITS || sh.sh_size < sizeof(PluginStamp) || !within(sh.sh_offset, sizeof(PluginStamp), file_size))
      return corrupt("its .graft_abi section is cut short");
    PluginStamp stamp{};
    if (!read(sh.sh_offset, sizeof stamp, &stamp)) return corrupt("its .graft_abi section is cut short");
    const auto magic = field(stamp.magic, sizeof stamp.magic);
    const auto abi = field(stamp.abi_version, sizeof stamp.abi_version);
    const auto torch = field(stamp.torch_version, sizeof stamp.torch_version);
    StampVersions v;
    const char* abi_end = abi ? abi->data() + abi->size() : nullptr;
    if (!magic || *magic != plugin_stamp_magic || !abi || abi->empty() || !torch ||
        std::from_chars(abi->data(), abi_end, v.abi_version).ptr != abi_end) {
      error = "its graft stamp (.graft_abi) is unreadable";
      return std::nullopt;
    }
    v.torch_version = *torch;
    return v;
  }
  error = "not a graft plugin (no graft stamp: build it with graft_add_plugin(); a library built "
          "against a graft older than plugin ABI 3 must be rebuilt)";
  return std::nullopt;
}

}  // namespace

std::optional<StampVersions> read_plugin_stamp(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = std::string("cannot be read: ") + std::strerror(errno);
    return std::nullopt;
  }
  in.seekg(0, std::ios::end);
  const std::streamoff end = in.tellg();
  if (end < 0) {
    error = "cannot be read (not a regular file)";
    return std::nullopt;
  }
  const auto read = [&](std::uint64_t offset, std::uint64_t size, void* out) {
    if (!within(offset, size, static_cast<std::uint64_t>(end))) return false;
    in.clear();
    in.seekg(static_cast<std::streamoff>(offset));
    in.read(static_cast<char*>(out), static_cast<std::streamsize>(size));
    return in.gcount() == static_cast<std::streamsize>(size);
  };
  return parse(static_cast<std::uint64_t>(end), read, error);
}

std::optional<StampVersions> parse_plugin_stamp(std::string_view file, std::string& error) {
  const auto read = [&](std::uint64_t offset, std::uint64_t size, void* out) {
    if (!within(offset, size, file.size())) return false;
    std::memcpy(out, file.data() + offset, size);
    return true;
  };
  return parse(file.size(), read, error);
}

}  // namespace graft::detail
