#include "graft/host/recipe.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>

#include "config/dotted_path.h"
#include "config/node.h"

namespace fs = std::filesystem;

namespace graft {

using detail::Node;
using detail::NodePtr;

namespace {

// A recipe is text a person wrote: anything larger is a wrong path (`base: /dev/zero`, a
// dataset file), refused before it is read whole. Pipes (`graft check <(...)`) still work.
constexpr std::size_t kMaxRecipeBytes = std::size_t(16) << 20;
// Files one recipe may load, bases included: `base: [a, a, ...]` in each of a few files
// otherwise multiplies into millions of loads.
constexpr std::size_t kMaxRecipeFiles = 256;

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw Error::usage("is a directory, not a recipe file", SourceLoc{path});
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error::usage("cannot open recipe file", SourceLoc{path});
  std::string text;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxRecipeBytes)
      throw Error::usage("is larger than " + std::to_string(kMaxRecipeBytes >> 20) + " MiB: not a recipe", SourceLoc{path});
  }
  return text;
}

NodePtr merge_nodes(const NodePtr& base, const NodePtr& over) {
  if (base->type != Node::Type::map || over->type != Node::Type::map) return over;
  auto out = std::make_shared<Node>(*base);
  out->loc = over->loc;
  for (const auto& e : over->entries) {
    auto it = std::find_if(out->entries.begin(), out->entries.end(),
                           [&](const Node::Entry& x) { return x.key == e.key; });
    if (it == out->entries.end()) {
      out->entries.push_back(e);
    } else {
      it->value = merge_nodes(it->value, e.value);
      it->key_loc = e.key_loc;
    }
  }
  return out;
}

// `plugins:` entries are paths relative to the file that names them: make them absolute
// now, because after merging nobody knows which file a list came from.
NodePtr resolve_plugin_paths(const NodePtr& root, const fs::path& dir) {
  const auto* e = root->find("plugins");
  if (!e) return root;
  if (e->value->type != Node::Type::list)
    throw Error::usage("plugins: expected a list of paths (plugin libraries or directories)", e->value->loc);
  auto list = std::make_shared<Node>(*e->value);
  for (auto& item : list->items) {
    if (item->type != Node::Type::scalar)
      throw Error::usage("plugins: expected a path, got a " + std::string(item->type == Node::Type::map ? "map" : "list"),
                         item->loc);
    auto resolved = std::make_shared<Node>(*item);
    fs::path p(item->value);
    if (p.is_relative()) resolved->value = (dir / p).lexically_normal().string();
    std::error_code ec;
    if (!fs::exists(resolved->value, ec))
      throw Error::usage("plugins: " + resolved->value + ": no such plugin library or directory", item->loc);
    item = resolved;
  }
  auto out = std::make_shared<Node>(*root);
  for (auto& entry : out->entries)
    if (entry.key == "plugins") entry.value = list;
  return out;
}

NodePtr load_with_bases(const std::string& path, std::vector<std::string>& stack,
                        std::vector<std::string>& sources) {
  const std::string canonical = fs::weakly_canonical(path).string();
  if (std::find(stack.begin(), stack.end(), canonical) != stack.end())
    throw Error::usage("base: inheritance cycle through " + path, SourceLoc{stack.back()});
  stack.push_back(canonical);
  sources.push_back(path);
  if (sources.size() > kMaxRecipeFiles)
    throw Error::usage("base: more than " + std::to_string(kMaxRecipeFiles) + " recipe files to load (a base named many times over?)",
                       SourceLoc{stack.size() > 1 ? stack[stack.size() - 2] : path});

  NodePtr root = detail::parse_yaml(read_file(path), path, true);
  if (root->type == Node::Type::null) {
    auto empty = std::make_shared<Node>(*root);
    empty->type = Node::Type::map;
    root = empty;
  }
  if (root->type != Node::Type::map)
    throw Error::usage("a recipe must be a map of sections (model:, data:, ...)", root->loc);
  const fs::path dir = fs::path(path).parent_path();
  root = resolve_plugin_paths(root, dir);

  NodePtr merged;
  if (const auto* base = root->find("base")) {
    std::vector<NodePtr> bases;
    std::vector<NodePtr> names;
    if (base->value->type == Node::Type::scalar) names.push_back(base->value);
    else if (base->value->type == Node::Type::list) names = base->value->items;
    else throw Error::usage("base: expected a recipe path or a list of them", base->value->loc);
    for (const auto& n : names) {
      if (n->type != Node::Type::scalar) throw Error::usage("base: expected a recipe path", n->loc);
      fs::path p(n->value);
      if (p.is_relative()) p = dir / p;
      std::error_code ec;
      if (!fs::exists(p, ec)) throw Error::usage("base: recipe '" + p.string() + "' does not exist", n->loc);
      NodePtr b = load_with_bases(p.lexically_normal().string(), stack, sources);
      merged = merged ? merge_nodes(merged, b) : b;
    }
    auto own = std::make_shared<Node>(*root);
    own->entries.erase(std::remove_if(own->entries.begin(), own->entries.end(),
                                      [](const Node::Entry& x) { return x.key == "base"; }),
                       own->entries.end());
    root = own;
  }
  stack.pop_back();
  return merged ? merge_nodes(merged, root) : root;
}

// The list index `s` names, when it is one that fits.
bool is_index(const std::string& s, std::size_t& index) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), index);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

NodePtr set_path(const NodePtr& node, const std::vector<std::string>& parts, std::size_t i,
                 const NodePtr& value, const SourceLoc& where) {
  if (i == parts.size()) return value;
  const std::string& key = parts[i];
  if (node->type == Node::Type::list) {
    std::size_t index = 0;
    if (!is_index(key, index) || index >= node->items.size())
      throw Error::usage("'" + key + "' is not an item of the list there (it has " +
                             std::to_string(node->items.size()) + " items)",
                         where);
    auto out = std::make_shared<Node>(*node);
    out->items[index] = set_path(node->items[index], parts, i + 1, value, where);
    return out;
  }
  if (node->type != Node::Type::map && node->type != Node::Type::null)
    throw Error::usage("cannot set '" + key + "' inside a scalar value", where);
  auto out = std::make_shared<Node>(*node);
  out->type = Node::Type::map;
  if (node->type == Node::Type::null) out->loc = where;
  for (auto& e : out->entries) {
    if (e.key == key) {
      e.value = set_path(e.value, parts, i + 1, value, where);
      e.key_loc = where;
      return out;
    }
  }
  out->entries.push_back(Node::Entry{key, where, set_path(detail::null_node(where), parts, i + 1, value, where)});
  return out;
}

}  // namespace

Config parse_yaml_file(const std::string& path) {
  return Config(detail::parse_yaml(read_file(path), path, true), "");
}

Config parse_yaml_text(const std::string& text, const std::string& source) {
  return Config(detail::parse_yaml(text, source, true), "");
}

Config merge(const Config& base, const Config& over) { return Config(merge_nodes(base.node(), over.node()), ""); }

Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  Recipe r;
  r.file = path;
  std::vector<std::string> stack;
  NodePtr root = load_with_bases(path, stack, r.sources);

  for (const auto& o : overrides) {
    const SourceLoc where{"--set " + o, 0, 0};
    const auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0) throw Error::usage("expected KEY.PATH=VALUE", where);
    const auto parts = detail::split_dotted(o.substr(0, eq));
    if (std::any_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); }))
      throw Error::usage("empty key in '" + o.substr(0, eq) + "'", where);
    NodePtr value = detail::parse_yaml(o.substr(eq + 1), where.file, false);
    auto v = std::make_shared<Node>(*value);
    v->loc = where;
    root = set_path(root, parts, 0, v, where);
  }

  r.root = Config(root, "");
  if (r.root.has("plugins")) {
    for (const auto& p : r.root["plugins"].items()) r.plugin_paths.push_back(p.as<std::string>());
  }
  return r;
}

}  // namespace graft
