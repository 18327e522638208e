#include "core/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace rudder::core {

namespace {

int remove_entry(int dir_fd, const std::string& name, const std::string& shown, uint64_t& removed,
                 std::string& failed);

// Names `shown` in `failed` and returns `err` (taken before `failed` allocates).
int fail_at(const std::string& shown, std::string& failed, int err) {
  failed = shown;
  return err;
}

// Removes what the directory `name` of `dir_fd` holds. Opens it relative to its parent's
// descriptor with O_NOFOLLOW, so a directory swapped for a symbolic link mid-walk fails (ELOOP)
// rather than being entered. A directory already gone has nothing left to remove.
int remove_children(int dir_fd, const std::string& name, const std::string& shown,
                    uint64_t& removed, std::string& failed) {
  const int fd = openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : fail_at(shown, failed, errno);
  DIR* dir = fdopendir(fd);
  if (dir == nullptr) {
    const int err = errno;
    close(fd);
    return fail_at(shown, failed, err);
  }
  int err = 0;
  while (err == 0) {
    errno = 0;
    const dirent* entry = readdir(dir);
    if (entry == nullptr) {
      if (errno != 0) err = fail_at(shown, failed, errno);
      break;
    }
    const std::string child = entry->d_name;
    if (child == "." || child == "..") continue;
    err = remove_entry(dirfd(dir), child, shown + "/" + child, removed, failed);
  }
  closedir(dir);
  return err;
}

// Removes the entry `name` of the open directory `dir_fd`: a directory after everything in it.
// An entry that disappears meanwhile (another process cleaning the same tree) counts as removed.
// Counts into `removed`; on failure leaves `failed` naming the entry and returns the errno.
int remove_entry(int dir_fd, const std::string& name, const std::string& shown, uint64_t& removed,
                 std::string& failed) {
  struct stat st {};
  if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT ? 0 : fail_at(shown, failed, errno);
  if (!S_ISDIR(st.st_mode)) {
    if (unlinkat(dir_fd, name.c_str(), 0) != 0)
      return errno == ENOENT ? 0 : fail_at(shown, failed, errno);
    ++removed;
    return 0;
  }
  // Network file systems (NFS) may skip entries of a directory that changes under readdir;
  // rmdir then finds it not empty, and one more walk finishes the job.
  for (int walk = 0;; ++walk) {
    if (const int err = remove_children(dir_fd, name, shown, removed, failed); err != 0) return err;
    if (unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) == 0) break;
    const int err = errno;
    if (err == ENOENT) return 0;
    if ((err != ENOTEMPTY && err != EEXIST) || walk == 1) return fail_at(shown, failed, err);
  }
  ++removed;
  return 0;
}

// "/", "." and ".." (however spelled): removing them is never what a caller meant.
bool refused(const std::string& path) {
  const std::string normal = std::filesystem::path(path).lexically_normal().generic_string();
  return normal == "/" || normal == "." || normal == "./" || normal == ".." || normal == "../";
}

}  // namespace

uint64_t remove_tree(const std::string& path, std::error_code& error) noexcept {
  error.clear();
  if (path.empty()) return 0;
  if (refused(path)) {
    error = std::make_error_code(std::errc::invalid_argument);
    return 0;
  }
  uint64_t removed = 0;
  std::string failed;
  if (const int err = remove_entry(AT_FDCWD, path, path, removed, failed); err != 0)
    error = std::error_code(err, std::generic_category());
  return removed;
}

uint64_t remove_tree(const std::string& path) {
  RUDDER_CHECK(!path.empty(), "remove_tree: the path is empty");
  RUDDER_CHECK(!refused(path), "remove_tree refuses to remove '", path, "'");
  uint64_t removed = 0;
  std::string failed;
  if (const int err = remove_entry(AT_FDCWD, path, path, removed, failed); err != 0)
    throw Error("cannot remove " + failed + ": " + std::strerror(err) + " (removing " + path + ")");
  return removed;
}

}  // namespace rudder::core
