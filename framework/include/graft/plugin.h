// The plugin SDK: what a plugin library declares, and the one-line registration macro.
//
//   #include <graft/model.h>   // ProductOf<Kind::backbone>: what a backbone factory returns
//   static graft::Stages make_lenet(const graft::Config& c) { ... c.get<int>("num_classes") ... }
//   GRAFT_PLUGIN(backbone, "lenet", make_lenet, "LeNet-5 as in the seeds' LeNetSequential",
//                graft::KeySpec("num_classes", 10, "output classes"));
//
// A library may hold any number of GRAFT_PLUGIN lines (in any of its source files). The
// CMake function graft_add_plugin() adds the library's single export (its manifest), so
// authors never write it. The manifest is checked (graft ABI, LibTorch version) before
// graft calls anything in the library.
#pragma once

#include <any>
#include <functional>
#include <string>
#include <vector>

#include <torch/version.h>

#include "graft/config.h"

/// Bumped whenever a header of the SDK changes in a way that breaks built plugins.
#define GRAFT_ABI_VERSION 2

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

// Each plugin library has its own list: hidden visibility keeps one copy per .so.
__attribute__((visibility("hidden"))) inline std::vector<PluginEntry>& local_entries() {
  static std::vector<PluginEntry> entries;
  return entries;
}

__attribute__((visibility("hidden"))) inline bool add_entry(Kind kind, const char* name,
                                                            const char* doc, Schema keys,
                                                            Factory factory) {
  local_entries().push_back(PluginEntry{kind, name, doc, std::move(keys), std::move(factory)});
  return true;
}

}  // namespace detail
}  // namespace graft

#define GRAFT_DETAIL_CAT2(a, b) a##b
#define GRAFT_DETAIL_CAT(a, b) GRAFT_DETAIL_CAT2(a, b)

/// Registers a plugin: kind (an identifier: backbone, module, ...), name, factory
/// (`Product f(const graft::Config&)`), one-line doc, then its config keys (KeySpec...).
#define GRAFT_PLUGIN(KIND, NAME, FACTORY, DOC, ...)                                      \
  [[maybe_unused]] static const bool GRAFT_DETAIL_CAT(graft_plugin_registered_, __LINE__) = \
      ::graft::detail::add_entry(                                                        \
          ::graft::Kind::KIND, NAME, DOC, ::graft::Schema{__VA_ARGS__},                  \
          [](const ::graft::Config& config) -> std::any {                                \
            return std::any(::graft::product_t<::graft::Kind::KIND>(FACTORY(config)));   \
          })
