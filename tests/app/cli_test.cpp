// The `rudder` executable, run as a user runs it.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/support/test_support.h"

namespace rudder::app {
namespace {

using testing::ProcessResult;
using testing::rudder_binary;
using testing::run_process;
using testing::TempDir;

std::string example() { return std::string(RUDDER_SOURCE_DIR) + "/configs/example.yaml"; }

// A failing `config check` must exit non-zero with one line naming the file and the key path.
void expect_config_failure(const std::string& yaml, const std::string& key_path,
                           const std::string& cause) {
  TempDir dir;
  const std::string path = dir.write("bad.yaml", yaml);
  const ProcessResult r = run_process({rudder_binary(), "config", "check", path});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(key_path), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(cause), std::string::npos) << r.err;
}

TEST(Cli, ConfigCheckPrintsTheResolvedConfig) {
  const ProcessResult r = run_process({rudder_binary(), "config", "check", example()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("name: example"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("beta: 0.1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("beta2: 0.999"), std::string::npos) << "defaults are printed: " << r.out;
}

TEST(Cli, ConfigCheckAppliesSetOverrides) {
  const ProcessResult r = run_process({rudder_binary(), "config", "check", example(), "--set",
                                       "optimizer.lr=0.25", "--set=seed=7"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("lr: 0.25"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("seed: 7"), std::string::npos) << r.out;
}

TEST(Cli, ConfigCheckRefusesASettingTheMethodDoesNotUse) {
  // Valid schema, but a reward model has no policy to push to rollout servers: a key is used or
  // refused, by `config check` as by `train`.
  expect_config_failure("reward_model: {}\nrollout: {endpoints: [\"127.0.0.1:9\"]}\n",
                        "rollout.endpoints",
                        "method 'reward_model' does not use it: only methods that train a policy");
  expect_config_failure("sft: {}\nmodel: {reference_path: /tmp/ref}\n", "model.reference_path",
                        "method 'sft' does not use it");
  expect_config_failure("dpo: {}\neval: {sampling: {seed: 5}}\n", "eval.sampling.seed",
                        "per-request sampling seeds are not implemented yet");
}

TEST(Cli, ConfigCheckUnknownKey) {
  expect_config_failure("training:\n  max_stepz: 3\n", "training.max_stepz", "unknown key");
}

TEST(Cli, ConfigCheckWrongType) {
  expect_config_failure("model:\n  num_layers: four\n", "model.num_layers",
                        "expected a non-negative integer");
}

TEST(Cli, ConfigCheckOutOfRange) {
  expect_config_failure("optimizer:\n  beta1: 1.5\n", "optimizer.beta1",
                        "expected a value >= 0 and < 1");
}

TEST(Cli, ConfigCheckBadYaml) {
  TempDir dir;
  const std::string path = dir.write("broken.yaml", "model: {hidden_size: 3\n");
  const ProcessResult r = run_process({rudder_binary(), "config", "check", path});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(path + ":"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("invalid YAML"), std::string::npos) << r.err;
}

TEST(Cli, ConfigCheckMissingFile) {
  const ProcessResult r = run_process({rudder_binary(), "config", "check", "/no/such/config.yaml"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("/no/such/config.yaml: cannot open"), std::string::npos) << r.err;
}

TEST(Cli, VersionReportsTheRuntime) {
  const ProcessResult r = run_process({rudder_binary(), "version"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* line : {"rudder 0.", "git ", "libtorch ", "blas ", "threads ", "cuda "}) {
    EXPECT_NE(r.out.find(line), std::string::npos) << line << " missing in " << r.out;
  }
}

TEST(Cli, HelpListsOnlyWorkingCommands) {
  const ProcessResult r = run_process({rudder_binary(), "--help"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("config check"), std::string::npos);
  EXPECT_NE(r.out.find("version"), std::string::npos);
  // Every command the help lists is accepted.
  for (const char* command : {"version", "help"}) {
    EXPECT_EQ(run_process({rudder_binary(), command}).exit_code, 0) << command;
  }
  EXPECT_EQ(run_process({rudder_binary(), "config", "reference"}).exit_code, 0);
  const ProcessResult bad = run_process({rudder_binary(), "frobnicate"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("unknown command 'frobnicate'"), std::string::npos);
  EXPECT_EQ(run_process({rudder_binary(), "--log-level", "loud", "version"}).exit_code, 1);
}

TEST(Cli, ReadmeConfigReferenceMatchesTheSchema) {
  std::ifstream in(std::string(RUDDER_SOURCE_DIR) + "/README.md");
  std::stringstream readme;
  readme << in.rdbuf();
  const std::string text = readme.str();
  const std::string begin = "<!-- config-reference:begin -->\n";
  const std::string end = "<!-- config-reference:end -->";
  const size_t b = text.find(begin);
  const size_t e = text.find(end);
  ASSERT_NE(b, std::string::npos);
  ASSERT_NE(e, std::string::npos);
  const std::string in_readme = text.substr(b + begin.size(), e - b - begin.size());
  const ProcessResult r = run_process({rudder_binary(), "config", "reference"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(in_readme, r.out) << "README.md is out of date: run `make docs`";
  // Every field is documented.
  EXPECT_EQ(r.out.find("|  |\n"), std::string::npos) << "a field without a comment";
}

}  // namespace
}  // namespace rudder::app
