#include "graft/host/registry.h"
#include "registry/labelled.h"

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "config/node.h"
#include "graft/log.h"
#include "registry/plugin_stamp.h"

namespace fs = std::filesystem;

namespace graft {

namespace {
const std::vector<Kind> kinds = {Kind::backbone, Kind::module,     Kind::initializer, Kind::freezer,
                                 Kind::checkpoint, Kind::hook,     Kind::dataset,     Kind::transform,
                                 Kind::optimizer,  Kind::scheduler, Kind::loss,       Kind::metric};

std::string major_minor(const std::string& version) {
  const auto first = version.find('.');
  if (first == std::string::npos) return version;
  const auto second = version.find('.', first + 1);
  return version.substr(0, second);
}

std::string first_line(const std::string& s) {
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}
}  // namespace

const std::vector<Kind>& all_kinds() { return kinds; }

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::backbone: return "backbone";
    case Kind::module: return "module";
    case Kind::initializer: return "initializer";
    case Kind::freezer: return "freezer";
    case Kind::checkpoint: return "checkpoint";
    case Kind::hook: return "hook";
    case Kind::dataset: return "dataset";
    case Kind::transform: return "transform";
    case Kind::optimizer: return "optimizer";
    case Kind::scheduler: return "scheduler";
    case Kind::loss: return "loss";
    case Kind::metric: return "metric";
  }
  return "?";
}

bool parse_kind(const std::string& name, Kind& out) {
  for (Kind k : kinds) {
    if (name == kind_name(k)) {
      out = k;
      return true;
    }
  }
  return false;
}

struct Registry::Impl {
  // Libraries stay loaded for the life of the process: objects made by their factories
  // (modules, hooks) hold code from them, and unloading at exit races with destructors.
  std::vector<boost::dll::shared_library>* libraries = new std::vector<boost::dll::shared_library>();
  std::set<std::string> seen;
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {}
Registry::~Registry() = default;

std::vector<std::string> Registry::default_search_path() {
  std::vector<std::string> paths;
  // graft_core lives in <prefix>/lib; its built-in plugins in <prefix>/lib/graft/plugins,
  // both in the build tree and in an installed tree.
  const fs::path core = boost::dll::this_line_location().string();
  paths.push_back((core.parent_path() / "graft" / "plugins").string());
  if (const char* env = std::getenv("GRAFT_PLUGIN_PATH")) {
    std::string all = env, cur;
    for (char c : all + ":") {
      if (c == ':') {
        if (!cur.empty()) paths.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
  }
  return paths;
}

void Registry::scan(const std::vector<std::string>& paths, Source source) {
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> files;
      for (const auto& entry : fs::directory_iterator(p, ec))
        if (entry.path().extension() == ".so") files.push_back(entry.path().string());
      std::sort(files.begin(), files.end());
      for (const auto& f : files) load_library(f, source);
    } else if (fs::exists(p, ec)) {
      load_library(p, source);
    } else {
      refusals_.push_back({p, "no such file or directory"});
      log::error("plugin path {}: no such file or directory", p);
    }
  }
}

bool Registry::load_library(const std::string& path, Source source) {
  std::error_code ec;
  const std::string canonical = fs::weakly_canonical(path, ec).string();
  if (!impl_->seen.insert(canonical).second) return true;

  auto refuse = [&](const std::string& reason) {
    refusals_.push_back({path, reason});
    log::error("plugin library {} refused: {}", path, reason);
    return false;
  };

  // The versions come from the file: nothing of the library runs before both match.
  std::string unreadable;
  const auto stamp = detail::read_plugin_stamp(path, unreadable);
  if (!stamp) return refuse(unreadable);
  if (stamp->abi_version != GRAFT_ABI_VERSION)
    return refuse("built for graft plugin ABI " + std::to_string(stamp->abi_version) + ", this graft has ABI " +
                  std::to_string(GRAFT_ABI_VERSION) + "; rebuild the plugin against this graft");
  if (major_minor(stamp->torch_version) != major_minor(TORCH_VERSION))
    return refuse("built with LibTorch " + stamp->torch_version + ", this graft uses LibTorch " + TORCH_VERSION +
                  "; rebuild the plugin against this LibTorch");

  boost::dll::shared_library lib;
  try {
    lib.load(path, boost::dll::load_mode::rtld_lazy | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    return refuse(std::string("cannot be loaded: ") + first_line(e.what()));
  }
  if (!lib.has("graft_plugin_manifest"))
    return refuse("not a graft plugin (no graft manifest; build it with graft_add_plugin())");

  Manifest manifest;
  try {
    manifest = lib.get_alias<Manifest()>("graft_plugin_manifest")();
  } catch (const std::exception& e) {
    return refuse(std::string("its manifest threw: ") + first_line(e.what()));
  }

  int added = 0;
  const bool from_recipe = source == Source::recipe;
  std::map<std::string, std::vector<std::string>> overridden;  // library -> "kind 'name'" it no longer provides
  for (auto& entry : manifest.entries) {
    const std::string what = std::string(kind_name(entry.kind)) + " '" + entry.name + "'";
    auto existing = std::find_if(plugins_.begin(), plugins_.end(),
                                 [&](const auto& p) { return p.entry.kind == entry.kind && p.entry.name == entry.name; });
    if (existing != plugins_.end() && from_recipe && !existing->from_recipe) {
      overridden[existing->library].push_back(what);
      duplicates_.erase({entry.kind, entry.name});  // the recipe chose
      *existing = {std::move(entry), path, true};
      ++added;
      continue;
    }
    if (existing != plugins_.end()) {
      auto& libs = duplicates_[{entry.kind, entry.name}];
      if (libs.empty()) libs.push_back(existing->library);
      libs.push_back(path);
      // a warning, not an error: it matters only to a recipe that uses the name (get())
      const std::string reason = "duplicate " + what + ", already provided by " + existing->library +
                                 "; this one is ignored, and a recipe that uses it is refused";
      refusals_.push_back({path, reason});
      log::warn("plugin library {} refused: {}", path, reason);
      continue;
    }
    plugins_.push_back({std::move(entry), path, from_recipe});
    ++added;
  }
  for (const auto& [old, names] : overridden) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    log::warn("plugin library {} (the recipe's plugins:) is used over {} for {}", path, old, list);
  }
  log::debug("plugin library {}: {} plugins", path, added);
  impl_->libraries->push_back(std::move(lib));
  return true;
}

const RegisteredPlugin* Registry::find(Kind kind, const std::string& name) const {
  for (const auto& p : plugins_)
    if (p.entry.kind == kind && p.entry.name == name) return &p;
  return nullptr;
}

const RegisteredPlugin& Registry::get(Kind kind, const std::string& name, const Config& at) const {
  if (const auto d = duplicates_.find({kind, name}); d != duplicates_.end()) {
    std::string libs;
    for (const auto& l : d->second) libs += (libs.empty() ? "" : " and ") + l;
    at.fail(std::string(kind_name(kind)) + " '" + name + "' is provided by " + libs +
            "; remove the stale one (GRAFT_PLUGIN_PATH), or list the one to use in the recipe's plugins:");
  }
  if (const auto* p = find(kind, name)) return *p;
  std::vector<std::string> names;
  for (const auto* p : list(kind)) names.push_back(p->entry.name);
  std::string msg = std::string("unknown ") + kind_name(kind) + " '" + name + "'";
  const std::string guess = closest_match(name, names);
  if (!guess.empty()) msg += " (did you mean '" + guess + "'?)";
  msg += names.empty() ? std::string("; no ") + kind_name(kind) + " plugin is installed" : "; known: ";
  for (std::size_t i = 0; i < names.size(); ++i) msg += (i ? ", " : "") + names[i];
  if (!refusals_.empty()) msg += " (" + std::to_string(refusals_.size()) + " plugin libraries were refused, see above)";
  at.fail(msg);
}

std::vector<const RegisteredPlugin*> Registry::list() const {
  std::vector<const RegisteredPlugin*> out;
  for (Kind k : kinds)
    for (const auto* p : list(k)) out.push_back(p);
  return out;
}

std::vector<const RegisteredPlugin*> Registry::list(Kind kind) const {
  std::vector<const RegisteredPlugin*> out;
  for (const auto& p : plugins_)
    if (p.entry.kind == kind) out.push_back(&p);
  std::sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->entry.name < b->entry.name; });
  return out;
}

std::string Registry::spec_name(const Config& spec) {
  if (spec.is_scalar()) return spec.as<std::string>();
  if (spec.is_map()) return spec.get<std::string>("name");
  spec.fail("expected a plugin name or a map with 'name:' and its settings");
}

Config Registry::validated_spec(Kind kind, const Config& spec, const std::vector<std::string>& extra) const {
  const auto& plugin = get(kind, spec_name(spec), spec.is_map() ? spec["name"] : spec);
  const std::string what = std::string(kind_name(kind)) + " " + plugin.entry.name;
  if (spec.is_scalar()) return Config(detail::null_node(spec.where()), spec.path()).validated(plugin.entry.keys, what);
  std::vector<std::string> allowed = extra;
  allowed.push_back("name");
  return spec.validated(plugin.entry.keys, what, allowed);
}

std::string Registry::label(Kind kind, const Config& spec) const {
  const std::string name = spec_name(spec);
  const auto* plugin = find(kind, name);
  return std::string(kind_name(kind)) + " '" + name + "' (" +
         (plugin ? fs::path(plugin->library).filename().string() : std::string("not installed")) + ")";
}

PluginFailure::PluginFailure(Kind kind, std::string who, std::string context, std::string detail, SourceLoc where)
    : Error(kind, who + " failed" + context + ": " + detail, std::move(where)),
      who_(std::move(who)),
      context_(std::move(context)),
      detail_(std::move(detail)) {}

void PluginFailure::rethrow(const std::string& who, const SourceLoc& where, const std::string& context) {
  try {
    throw;
  } catch (const PluginFailure&) {
    throw;
  } catch (const Error& e) {
    throw PluginFailure(e.kind(), who, context, first_line(e.message()), where);
  } catch (const c10::Error& e) {
    throw PluginFailure(Kind::runtime, who, context, first_line(e.what_without_backtrace()), where);
  } catch (const std::exception& e) {
    throw PluginFailure(Kind::runtime, who, context, first_line(e.what()), where);
  } catch (...) {
    throw PluginFailure(Kind::runtime, who, context, "an unknown exception", where);
  }
}

PluginFailure PluginFailure::within(const std::string& outer) const {
  return PluginFailure(kind(), who_, outer + context_, detail_, where());
}

std::any Registry::create_any(Kind kind, const Config& spec, const std::vector<std::string>& extra) const {
  const Config config = validated_spec(kind, spec, extra);
  const auto& plugin = *find(kind, spec_name(spec));
  const std::string who = label(kind, spec);
  try {
    return registry::labelled(kind, plugin.entry.factory(config), who, spec.where());
  } catch (const Error& e) {
    if (e.where().known()) throw;  // already names the recipe line and key
    throw Error(e.kind(), who + ": " + e.message(), spec.where());
  } catch (const c10::Error& e) {
    throw Error::runtime(who + " failed: " + first_line(e.what_without_backtrace()), spec.where());
  } catch (const std::exception& e) {
    throw Error::runtime(who + " failed: " + first_line(e.what()), spec.where());
  } catch (...) {
    throw Error::runtime(who + " failed with an unknown exception", spec.where());
  }
}

}  // namespace graft
