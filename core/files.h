// File-system operations that Rudder does itself rather than through std::filesystem.
//
// std::filesystem::remove_all crashes (SIGSEGV) in a process that loads PyTorch 2.11's libtorch:
// libtorch exports its own copy of libstdc++'s directory-walking internals, and the two disagree.
// Everything else Rudder takes from std::filesystem works there.
#pragma once

#include <cstdint>
#include <string>
#include <system_error>

namespace rudder::core {

/// Removes `path` and everything under it, as `rm -rf` does: symbolic links are removed, never
/// followed, and a `path` that does not exist is no error. Returns how many entries it removed.
/// Throws core::Error naming the entry that could not be removed (what was before it is gone),
/// and InvalidArgument for "/", "." or "..".
uint64_t remove_tree(const std::string& path);

/// The same, reporting a failure in `error` (cleared on success) instead of throwing.
uint64_t remove_tree(const std::string& path, std::error_code& error) noexcept;

}  // namespace rudder::core
