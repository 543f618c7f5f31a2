// Downloads over http(s), durable and checked.
#pragma once

#include <string>

namespace graft {

/// Downloads `url` to `dest` (via a temporary file in the same directory, renamed only
/// after the whole file arrived and its sha256 starts with `hash_prefix`, if given).
/// Nothing is left behind on failure. A progress bar goes to stderr on a terminal.
void download_file(const std::string& url, const std::string& dest, const std::string& hash_prefix);

}  // namespace graft
