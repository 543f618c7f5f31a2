// The export of a plugin library. graft_add_plugin() compiles this once into every plugin
// library; do not include it yourself.
//
// The two C symbols are data, so graft reads the ABI and LibTorch versions without running
// any code of the library; only when both match does it call graft_plugin_manifest.
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

extern "C" {
__attribute__((visibility("default"))) extern const int graft_plugin_abi_version;
__attribute__((visibility("default"))) extern const char graft_plugin_torch_version[];
const int graft_plugin_abi_version = GRAFT_EXPORT_ABI_VERSION;
const char graft_plugin_torch_version[] = GRAFT_EXPORT_TORCH_VERSION;
}

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
