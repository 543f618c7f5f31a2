// SHA-256, for the hash check of downloaded weights.
#pragma once

#include <cstddef>
#include <string>

namespace graft {

std::string sha256_hex(const void* data, std::size_t size);
std::string sha256_file(const std::string& path);

}  // namespace graft
