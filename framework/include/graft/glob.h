// Name patterns, as recipes write them (`layer4.*`, `*.bias`, `features.[0-3].*`).
#pragma once

#include <string>

namespace graft {

/// fnmatch-style glob: `*` any run of characters (dots included), `?` one, [abc] a set.
bool glob_match(const std::string& pattern, const std::string& text);

}  // namespace graft
