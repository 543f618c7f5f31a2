// The plugin registry (host side): finds plugin libraries, checks their manifests and
// keeps (kind, name) -> factory. Plugin authors do not need this header.
#pragma once

#include <any>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graft/config.h"
#include "graft/plugin.h"

namespace graft {

struct RegisteredPlugin {
  PluginEntry entry;
  std::string library;       ///< path of the .so it came from
  bool from_recipe = false;  ///< loaded from a recipe's plugins: (Registry::Source::recipe)
};

/// A library that was looked at and not taken, and why.
struct Refusal {
  std::string library;
  std::string reason;
  std::string str() const { return library + ": " + reason; }
};

/// A plugin that threw while graft called it, as one line:
///   "<who> failed<context>: <what it threw, first line>"
/// at `where`, the recipe entry that names the plugin. The loader and the trainer add to
/// the context as the error passes through them (" at epoch 2, batch 3, step 12",
/// " on sample 7"). A graft::Error keeps its kind; anything else is a runtime error.
class PluginFailure : public Error {
 public:
  PluginFailure(Kind kind, std::string who, std::string context, std::string detail, SourceLoc where);
  /// The exception in flight (any type) as a PluginFailure of `who`; one that already is a
  /// PluginFailure (another plugin's, called from this one) passes unchanged: the plugin
  /// named is the one that threw.
  [[noreturn]] static void rethrow(const std::string& who, const SourceLoc& where, const std::string& context = "");
  /// The same failure with `outer` in front of its context.
  PluginFailure within(const std::string& outer) const;
  /// Whether its context already says where the run was (" at epoch ...").
  bool placed() const { return context_.rfind(" at ", 0) == 0; }

  const std::string& who() const { return who_; }
  const std::string& context() const { return context_; }
  const std::string& detail() const { return detail_; }

 private:
  std::string who_, context_, detail_;
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  /// The built-in plugin directory (next to the running binary: ../lib/graft/plugins),
  /// then every entry of GRAFT_PLUGIN_PATH (':'-separated directories or .so files).
  static std::vector<std::string> default_search_path();

  /// Where libraries come from. Two libraries may provide the same (kind, name):
  /// - a recipe's `plugins:` library wins over one of the search path (a stale copy on
  ///   GRAFT_PLUGIN_PATH, a built-in), said in one warning line;
  /// - otherwise the first is kept and the second refused (a warning); a recipe that then
  ///   uses that name is an error naming both libraries (get()).
  enum class Source { search_path, recipe };

  /// Loads every graft plugin library in `paths` (directories are scanned for *.so, not
  /// recursively; files are loaded as they are). A library already loaded is skipped.
  /// Libraries that cannot be used are recorded in refusals() and logged as errors.
  void scan(const std::vector<std::string>& paths, Source source = Source::search_path);
  /// Loads one library. Returns false (and records the refusal) when it is refused.
  bool load_library(const std::string& path, Source source = Source::search_path);

  const RegisteredPlugin* find(Kind kind, const std::string& name) const;
  /// Like find() but fails with a usage error located at `at`, listing what exists and
  /// suggesting the closest name, or naming both libraries of an unresolved duplicate.
  const RegisteredPlugin& get(Kind kind, const std::string& name, const Config& at) const;
  std::vector<const RegisteredPlugin*> list() const;
  std::vector<const RegisteredPlugin*> list(Kind kind) const;
  const std::vector<Refusal>& refusals() const { return refusals_; }

  /// Validates `spec` (a map with `name:` plus the plugin's keys, or a bare name) against
  /// the plugin's schema and calls its factory. Errors name the plugin and its library.
  /// `extra` names keys of the spec that the caller consumes itself (e.g. optimizer `groups`).
  std::any create_any(Kind kind, const Config& spec, const std::vector<std::string>& extra = {}) const;
  template <Kind K> product_t<K> create(const Config& spec, const std::vector<std::string>& extra = {}) const {
    return std::any_cast<product_t<K>>(create_any(K, spec, extra));
  }

  /// The name a plugin spec refers to: `spec` itself when scalar, else its `name:` key.
  static std::string spec_name(const Config& spec);
  /// How errors name the plugin `spec` refers to: "metric 'accuracy' (libgraft_metrics.so)".
  std::string label(Kind kind, const Config& spec) const;
  /// The spec validated against its plugin's schema (what the factory will see).
  Config validated_spec(Kind kind, const Config& spec, const std::vector<std::string>& extra = {}) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<RegisteredPlugin> plugins_;
  std::vector<Refusal> refusals_;
  /// (kind, name) provided by more than one library of the same source: the libraries
  std::map<std::pair<Kind, std::string>, std::vector<std::string>> duplicates_;
};

}  // namespace graft
