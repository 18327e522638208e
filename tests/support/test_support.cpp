#include "tests/support/test_support.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/files.h"
#include "proto/rudder.pb.h"

namespace rudder::testing {

namespace fs = std::filesystem;

ChatTemplate chat_template() {
  ChatTemplate t;
  t.set_user_prefix("User: ");
  t.set_user_suffix("\n");
  t.set_assistant_prefix("Assistant: ");
  t.set_assistant_suffix("\n");
  t.set_system_suffix("\n");
  return t;
}

std::string golden_dir() {
  if (const char* dir = std::getenv("RUDDER_GOLDEN_DIR"); dir != nullptr && *dir != '\0')
    return dir;
  return (fs::path(RUDDER_SOURCE_DIR) / ".." / "shared" / "golden").lexically_normal().string();
}

std::vector<std::string> golden_subdirs(const std::string& name) {
  std::vector<std::string> dirs;
  const fs::path root = fs::path(golden_dir()) / name;
  if (!fs::is_directory(root)) return dirs;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (entry.is_directory()) dirs.push_back(entry.path().string());
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

std::vector<std::string> golden_model_dirs() { return golden_subdirs("models"); }

// Named by the process id and a per-process count: unique among running tests, and a name an
// earlier process of the same id left behind is stepped over. (std::random_device crashed every
// test that made one in a build against PyTorch 2.11's libtorch; nothing here needs it. Removal
// goes through core::remove_tree for the same reason.)
TempDir::TempDir() {
  static std::atomic<uint64_t> count{0};
  const fs::path base = fs::path(RUDDER_BINARY_DIR) / "test-tmp";
  fs::create_directories(base);
  for (;;) {
    fs::path candidate =
        base / ("t" + std::to_string(getpid()) + "-" + std::to_string(count.fetch_add(1)));
    if (fs::create_directory(candidate)) {
      path_ = candidate.string();
      return;
    }
  }
}

TempDir::~TempDir() {
  std::error_code ec;
  core::remove_tree(path_, ec);
}

std::string TempDir::write(const std::string& name, const std::string& content) const {
  const fs::path p = fs::path(path_) / name;
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << content;
  return p.string();
}

namespace {

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

}  // namespace

ProcessResult run_process(const std::vector<std::string>& argv,
                          const std::vector<std::string>& env_extra) {
  int out_pipe[2];
  int err_pipe[2];
  if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    close(out_pipe[0]);
    close(err_pipe[0]);
    for (const auto& kv : env_extra) putenv(const_cast<char*>(kv.c_str()));
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  ProcessResult result;
  std::thread err_reader([&] { result.err = read_all(err_pipe[0]); });
  result.out = read_all(out_pipe[0]);
  err_reader.join();
  close(out_pipe[0]);
  close(err_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  return result;
}

int spawn_process(const std::vector<std::string>& argv, const std::string& stdout_path,
                  const std::string& stderr_path, const std::vector<std::string>& env_extra) {
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    const int out = open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    dup2(err, 2);
    for (const auto& kv : env_extra) putenv(const_cast<char*>(kv.c_str()));
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  setpgid(pid, pid);
  return pid;
}

ProcessResult wait_process(int pid) {
  ProcessResult result;
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  return result;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string rudder_binary() { return std::string(RUDDER_BINARY_DIR) + "/app/rudder"; }

}  // namespace rudder::testing
