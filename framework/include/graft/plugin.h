// The plugin SDK: what a plugin library declares, and the one-line registration macro.
//
//   #include <graft/model.h>   // ProductOf<Kind::backbone>: what a backbone factory returns
//   static graft::Stages make_lenet(const graft::Config& c) { ... c.get<int>("num_classes") ... }
//   GRAFT_PLUGIN(backbone, "lenet", make_lenet, "LeNet-5 as in the seeds' LeNetSequential",
//                graft::KeySpec("num_classes", 10, "output classes").min(1));
//
// A library may hold any number of GRAFT_PLUGIN lines (in any of its source files). The
// CMake function graft_add_plugin() adds the library's stamp (graft ABI and LibTorch
// versions, read from the file before it is loaded) and its single export (the manifest),
// so authors never write them. GRAFT_PLUGIN builds nothing when the library is loaded: it
// leaves a constant pointer to a function that makes the entry, and only the manifest,
// called after the versions were checked, calls those functions.
#pragma once

#include <any>
#include <functional>
#include <string>
#include <vector>

#include <torch/version.h>

#include "graft/config.h"

/// Bumped whenever a header of the SDK changes in a way that breaks built plugins.
#define GRAFT_ABI_VERSION 5

namespace graft {

enum class Kind {
  backbone,     ///< a whole network (ResNet, VGG, ...)
  module,       ///< a layer or block for surgery (heads, attention, ...)
  initializer,  ///< a weight initialisation method
  freezer,      ///< a freezing policy
  checkpoint,   ///< a checkpoint strategy
  hook,         ///< a trainer hook
  dataset,
  transform,
  optimizer,
  scheduler,
  loss,
  metric,
};

const std::vector<Kind>& all_kinds();
const char* kind_name(Kind kind);
/// Parses "backbone", ...; returns false for an unknown name.
bool parse_kind(const std::string& name, Kind& out);

/// What a factory of kind K returns; specialised by the header that defines that kind's
/// interface (graft/model.h for backbone and module, ...).
template <Kind K> struct ProductOf;
template <Kind K> using product_t = typename ProductOf<K>::type;

using Factory = std::function<std::any(const Config&)>;

struct PluginEntry {
  Kind kind;
  std::string name;
  std::string doc;
  Schema keys;
  Factory factory;
};

/// What a library exports: checked before anything else in it is used.
struct Manifest {
  int abi_version = 0;
  std::string torch_version;
  std::vector<PluginEntry> entries;
};

namespace detail {

/// What graft_add_plugin() stamps into every plugin library, in its ELF section
/// `.graft_abi`: text in fixed-size fields, so graft reads it from the file without loading
/// the library. Its layout never changes (it is how a library built against any graft is
/// recognised); GRAFT_ABI_VERSION covers everything else.
struct PluginStamp {
  char magic[16];          ///< "graft-plugin"
  char abi_version[16];    ///< GRAFT_ABI_VERSION, in decimal
  char torch_version[64];  ///< TORCH_VERSION
};
inline constexpr char plugin_stamp_magic[] = "graft-plugin";

/// Makes one entry. GRAFT_PLUGIN leaves a pointer to one of these in the section
/// `graft_entries` of the library (or program) it is compiled into.
using EntryMaker = void (*)(std::vector<PluginEntry>&);

}  // namespace detail
}  // namespace graft

// The linker bounds each module's `graft_entries` section with these two symbols. Hidden,
// so every library walks only its own; weak, so a module without entries links (both null).
extern "C" {
extern const graft::detail::EntryMaker __start_graft_entries[] __attribute__((weak, visibility("hidden")));
extern const graft::detail::EntryMaker __stop_graft_entries[] __attribute__((weak, visibility("hidden")));
}

namespace graft {
namespace detail {

/// The entries of the module this is compiled into, made now (their schemas, factories).
__attribute__((visibility("hidden"))) inline std::vector<PluginEntry> local_entries() {
  std::vector<PluginEntry> entries;
  for (const EntryMaker* make = __start_graft_entries; make != __stop_graft_entries; ++make) (*make)(entries);
  return entries;
}

}  // namespace detail
}  // namespace graft

#define GRAFT_DETAIL_CAT2(a, b) a##b
#define GRAFT_DETAIL_CAT(a, b) GRAFT_DETAIL_CAT2(a, b)

/// Registers a plugin: kind (an identifier: backbone, module, ...), name, factory
/// (`Product f(const graft::Config&)`), one-line doc, then its config keys (KeySpec...).
/// Expands to a function that appends the entry and a constant pointer to it in the
/// section `graft_entries`: no code runs when the library is loaded.
#define GRAFT_PLUGIN(KIND, NAME, FACTORY, DOC, ...)                                                \
  static void GRAFT_DETAIL_CAT(graft_plugin_entry_, __LINE__)(std::vector<::graft::PluginEntry> & out) { \
    out.push_back(::graft::PluginEntry{                                                            \
        ::graft::Kind::KIND, NAME, DOC, ::graft::Schema{__VA_ARGS__},                              \
        [](const ::graft::Config& config) -> std::any {                                            \
          return std::any(::graft::product_t<::graft::Kind::KIND>(FACTORY(config)));               \
        }});                                                                                       \
  }                                                                                                \
  __attribute__((section("graft_entries"), used)) static const ::graft::detail::EntryMaker        \
      GRAFT_DETAIL_CAT(graft_plugin_entry_ptr_, __LINE__) = &GRAFT_DETAIL_CAT(graft_plugin_entry_, __LINE__)
