#include "config/node.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>

namespace graft::detail {

NodePtr null_node(const SourceLoc& loc) {
  auto n = std::make_shared<Node>();
  n->loc = loc;
  return n;
}

namespace {
SourceLoc loc_of(const YAML::Mark& mark, const std::string& file) {
  if (mark.is_null()) return SourceLoc{file, 0, 0};
  return SourceLoc{file, mark.line + 1, mark.column + 1};
}
}  // namespace

namespace {

NodePtr copy_yaml(const YAML::Node& yaml, const std::string& file, bool positions, std::size_t depth,
                  std::size_t& nodes_left, std::size_t max_nodes) {
  if (depth > kMaxYamlDepth || nodes_left == 0)
    throw Error::usage(depth > kMaxYamlDepth
                           ? "YAML nests more than " + std::to_string(kMaxYamlDepth) + " levels deep (an alias inside its own anchor?)"
                           : "YAML expands to more than " + std::to_string(max_nodes) + " values (aliases of aliases?)",
                       positions ? loc_of(yaml.Mark(), file) : SourceLoc{file, 0, 0});
  --nodes_left;
  auto n = std::make_shared<Node>();
  n->loc = positions ? loc_of(yaml.Mark(), file) : SourceLoc{file, 0, 0};
  switch (yaml.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      n->type = Node::Type::null;
      break;
    case YAML::NodeType::Scalar:
      n->type = Node::Type::scalar;
      n->value = yaml.Scalar();
      n->quoted = yaml.Tag() == "!";
      break;
    case YAML::NodeType::Sequence:
      n->type = Node::Type::list;
      for (const auto& item : yaml) n->items.push_back(copy_yaml(item, file, positions, depth + 1, nodes_left, max_nodes));
      break;
    case YAML::NodeType::Map:
      n->type = Node::Type::map;
      for (const auto& kv : yaml) {
        const std::string key = kv.first.Scalar();
        const SourceLoc key_loc = positions ? loc_of(kv.first.Mark(), file) : SourceLoc{file, 0, 0};
        if (n->find(key))
          throw Error::usage("duplicate key '" + key + "'", key_loc);
        n->entries.push_back(Node::Entry{key, key_loc, copy_yaml(kv.second, file, positions, depth + 1, nodes_left, max_nodes)});
      }
      break;
  }
  return n;
}

}  // namespace

NodePtr from_yaml(const YAML::Node& yaml, const std::string& file, bool positions, std::size_t max_nodes) {
  std::size_t nodes_left = max_nodes;
  return copy_yaml(yaml, file, positions, 0, nodes_left, max_nodes);
}

YAML::Node to_yaml(const Node& node) {
  switch (node.type) {
    case Node::Type::null:
      return YAML::Node(YAML::NodeType::Null);
    case Node::Type::scalar: {
      YAML::Node s(node.value);
      if (node.quoted) s.SetTag("!");
      return s;
    }
    case Node::Type::list: {
      YAML::Node l(YAML::NodeType::Sequence);
      for (const auto& item : node.items) l.push_back(to_yaml(*item));
      return l;
    }
    case Node::Type::map: {
      YAML::Node m(YAML::NodeType::Map);
      for (const auto& e : node.entries) m[e.key] = to_yaml(*e.value);
      return m;
    }
  }
  return {};
}

NodePtr parse_yaml(const std::string& text, const std::string& source, bool source_is_file) {
  try {
    const YAML::Node doc = YAML::Load(text);
    // without aliases a node takes a byte or more of text: larger texts get a larger bound
    auto n = from_yaml(doc, source, source_is_file, std::max<std::size_t>(100'000, text.size()));
    if (n->loc.line == 0 && source_is_file) const_cast<Node&>(*n).loc = SourceLoc{source, 1, 1};
    return n;
  } catch (const YAML::ParserException& e) {
    SourceLoc where{source, 0, 0};
    if (!e.mark.is_null() && source_is_file) where = SourceLoc{source, e.mark.line + 1, e.mark.column + 1};
    throw Error::usage("YAML syntax error: " + e.msg, where);
  } catch (const YAML::Exception& e) {
    throw Error::usage("YAML error: " + e.msg, SourceLoc{source, 0, 0});
  }
}

}  // namespace graft::detail
