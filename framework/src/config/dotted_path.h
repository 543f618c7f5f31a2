// Dotted key and module paths ("model.backbone.name", "layer1.0.conv1"), internal to graft_core.
#pragma once

#include <string>
#include <vector>

namespace graft::detail {

/// "a.b.c" -> {"a", "b", "c"}; empty segments are kept ("a..b" -> {"a", "", "b"}, "" -> {""}),
/// so callers can reject them.
inline std::vector<std::string> split_dotted(const std::string& path) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : path) {
    if (c == '.') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  return parts;
}

}  // namespace graft::detail
