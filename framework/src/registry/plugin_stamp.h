// Reading a plugin library's stamp (graft ABI and LibTorch versions) from its file,
// without loading it: nothing of a library built for another graft runs, static
// initialisers included.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace graft::detail {

struct StampVersions {
  int abi_version = 0;
  std::string torch_version;
};

/// The stamp of the plugin library at `path`: its section `.graft_abi` (a PluginStamp),
/// found through the ELF section headers. Returns nothing and sets `error` to one line when
/// the file cannot be read, is not a 64-bit ELF file of this machine's byte order, is
/// truncated or malformed, or has no stamp. Never throws for a bad file.
std::optional<StampVersions> read_plugin_stamp(const std::string& path, std::string& error);
/// The same over a whole file's bytes.
std::optional<StampVersions> parse_plugin_stamp(std::string_view file, std::string& error);

}  // namespace graft::detail
