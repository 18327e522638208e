// Content digests of files: what checkpoint manifests and weight updates carry.
#pragma once

#include <string>

namespace rudder::core {

/// Hex SHA-256 (64 lower-case digits) of a file's content. Throws InvalidArgument naming the
/// file when it cannot be opened.
std::string sha256_file(const std::string& path);

}  // namespace rudder::core
