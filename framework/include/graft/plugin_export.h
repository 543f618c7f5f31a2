// The stamp and the export of a plugin library. graft_add_plugin() compiles this once into
// every plugin library; do not include it yourself.
//
// The stamp is constant data in the ELF section `.graft_abi`: graft reads the ABI and
// LibTorch versions from the file before loading it, so nothing of a library built for
// another graft or LibTorch runs, not even its static initialisers. Only when both match
// does graft load it and call graft_plugin_manifest, which makes the entries.
#pragma once

#include <boost/dll/alias.hpp>

#include "graft/plugin.h"

// Tests build deliberately mismatched libraries by overriding these two.
#ifndef GRAFT_EXPORT_ABI_VERSION
#define GRAFT_EXPORT_ABI_VERSION GRAFT_ABI_VERSION
#endif
#ifndef GRAFT_EXPORT_TORCH_VERSION
#define GRAFT_EXPORT_TORCH_VERSION TORCH_VERSION
#endif

#define GRAFT_DETAIL_STR2(x) #x
#define GRAFT_DETAIL_STR(x) GRAFT_DETAIL_STR2(x)

__attribute__((section(".graft_abi"), used)) static const graft::detail::PluginStamp graft_plugin_stamp = {
    "graft-plugin", GRAFT_DETAIL_STR(GRAFT_EXPORT_ABI_VERSION), GRAFT_EXPORT_TORCH_VERSION};

namespace graft::detail {
inline Manifest export_manifest() {
  Manifest m;
  m.abi_version = GRAFT_EXPORT_ABI_VERSION;
  m.torch_version = GRAFT_EXPORT_TORCH_VERSION;
  m.entries = local_entries();
  return m;
}
}  // namespace graft::detail

BOOST_DLL_ALIAS(graft::detail::export_manifest, graft_plugin_manifest)
