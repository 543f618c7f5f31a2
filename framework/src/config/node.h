// The recipe tree behind graft::Config: plain data with source locations, built from
// yaml-cpp once and never mutated after (edits build new nodes).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "graft/error.h"

namespace YAML {
class Node;
}

namespace graft::detail {

struct Node {
  enum class Type { null, scalar, map, list };

  struct Entry {
    std::string key;
    SourceLoc key_loc;
    std::shared_ptr<const Node> value;
  };

  Type type = Type::null;
  std::string value;    ///< scalar text
  bool quoted = false;  ///< a quoted scalar is always a string, never a number or bool
  std::vector<Entry> entries;
  std::vector<std::shared_ptr<const Node>> items;
  SourceLoc loc;

  const Entry* find(const std::string& key) const {
    for (const auto& e : entries)
      if (e.key == key) return &e;
    return nullptr;
  }
};

using NodePtr = std::shared_ptr<const Node>;

NodePtr null_node(const SourceLoc& loc);
/// Copies a yaml-cpp tree. An alias is copied where it is used, so the copy is bounded: at
/// most kMaxYamlDepth deep (an anchor holding an alias of itself nests without end) and
/// `max_nodes` nodes (aliases of aliases grow exponentially); beyond, a usage error.
constexpr std::size_t kMaxYamlDepth = 256;
NodePtr from_yaml(const YAML::Node& yaml, const std::string& file, bool positions = true,
                  std::size_t max_nodes = 100'000);
YAML::Node to_yaml(const Node& node);
/// Parses YAML text into a node; syntax errors are usage errors at source:line:col.
NodePtr parse_yaml(const std::string& text, const std::string& source, bool source_is_file);

}  // namespace graft::detail
