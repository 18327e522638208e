// Helpers shared by every test binary.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace rudder {
class ChatTemplate;
}

namespace rudder::testing {

/// The message of the E that `f` throws; a test failure, and "", where it throws none.
template <typename E>
std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception, none was thrown";
  return "";
}

/// Plain role prefixes ("User: ", "Assistant: ") with a newline after each turn: chats the data
/// tests can spell out.
ChatTemplate chat_template();

/// `$RUDDER_GOLDEN_DIR` when set, else `../shared/golden` beside the source tree.
std::string golden_dir();

/// Every directory under `golden_dir()/name`, sorted; empty when there is none.
std::vector<std::string> golden_subdirs(const std::string& name);

/// Every directory under `golden_dir()/models`, sorted (each a Hugging Face model directory with
/// its expected outputs); empty when there is none.
std::vector<std::string> golden_model_dirs();

/// A fresh directory under the build tree, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  /// Writes `content` to `name` inside the directory and returns its path.
  std::string write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

/// What a finished child process left behind.
struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;      // the signal that killed it, else 0
  std::string out;     // stdout
  std::string err;     // stderr
};

/// Runs `argv` to completion with `env_extra` ("K=V") added to the environment.
ProcessResult run_process(const std::vector<std::string>& argv,
                          const std::vector<std::string>& env_extra = {});

/// Starts `argv` in its own process group (so the test can signal the whole tree) with stdout
/// and stderr sent to files; returns its pid.
int spawn_process(const std::vector<std::string>& argv, const std::string& stdout_path,
                  const std::string& stderr_path, const std::vector<std::string>& env_extra = {});

/// Waits for a spawned process; returns what run_process would (out/err left empty).
ProcessResult wait_process(int pid);

/// Reads a whole file ("" when absent).
std::string read_file(const std::string& path);

/// Path of the built `rudder` executable.
std::string rudder_binary();

}  // namespace rudder::testing
