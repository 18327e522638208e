#include "core/config.h"

#include <cstdlib>

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "tests/support/test_support.h"

namespace rudder::core {
namespace {

using testing::TempDir;

// Loads `yaml` from a file and returns the error message ("" when it loads).
std::string load_error(const TempDir& dir, const std::string& yaml,
                       const std::vector<std::string>& overrides = {}) {
  const std::string path = dir.write("config.yaml", yaml);
  try {
    load_experiment_config(path, overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

void expect_one_line_naming(const std::string& message, const std::string& file,
                            const std::string& key) {
  EXPECT_NE(message, "") << "expected an error";
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_NE(message.find(file), std::string::npos) << "file missing from: " << message;
  EXPECT_NE(message.find(key), std::string::npos) << "key path missing from: " << message;
}

TEST(Config, ExampleLoadsWithDefaultsFilledIn) {
  const ExperimentConfig c =
      load_experiment_config(std::string(RUDDER_SOURCE_DIR) + "/configs/example.yaml");
  EXPECT_EQ(c.name(), "example");
  EXPECT_EQ(c.model().hidden_size(), 128u);
  EXPECT_EQ(c.model().num_kv_heads(), 2u);  // default
  ASSERT_TRUE(c.has_dpo());
  EXPECT_DOUBLE_EQ(c.dpo().beta(), 0.1);
  EXPECT_DOUBLE_EQ(c.optimizer().lr(), 5e-5);
  EXPECT_DOUBLE_EQ(c.optimizer().beta2(), 0.999);  // default
  EXPECT_EQ(c.data().synthetic().tasks_size(), 2);
  EXPECT_EQ(c.server().host(), "127.0.0.1");
  EXPECT_FALSE(c.has_sft());
}

TEST(Config, EmptyFileGivesAllDefaults) {
  TempDir dir;
  const ExperimentConfig c = load_experiment_config(dir.write("empty.yaml", ""));
  EXPECT_EQ(c.name(), "rudder");
  EXPECT_EQ(c.seed(), 1234u);
  EXPECT_EQ(c.dtype(), "float32");
  EXPECT_EQ(c.method_case(), ExperimentConfig::METHOD_NOT_SET);
}

TEST(Config, UnknownKeyNamesFileLineAndPathWithSuggestion) {
  TempDir dir;
  const std::string msg = load_error(dir, "model:\n  hiden_size: 64\n");
  expect_one_line_naming(msg, "config.yaml:2:3", "model.hiden_size");
  EXPECT_NE(msg.find("did you mean 'hidden_size'"), std::string::npos) << msg;
}

TEST(Config, WrongTypeIsRejected) {
  TempDir dir;
  std::string msg = load_error(dir, "training:\n  max_steps: ten\n");
  expect_one_line_naming(msg, "config.yaml", "training.max_steps");
  EXPECT_NE(msg.find("expected a non-negative integer, got 'ten'"), std::string::npos) << msg;

  msg = load_error(dir, "model: 5\n");
  expect_one_line_naming(msg, "config.yaml", "model");
  EXPECT_NE(msg.find("expected a mapping"), std::string::npos) << msg;

  msg = load_error(dir, "model:\n  tie_word_embeddings: maybe\n");
  EXPECT_NE(msg.find("expected true or false"), std::string::npos) << msg;

  msg = load_error(dir, "optimizer:\n  lr: [1, 2]\n");
  EXPECT_NE(msg.find("expected a single value, got a list"), std::string::npos) << msg;

  msg = load_error(dir, "training:\n  max_steps: 1.5\n");
  EXPECT_NE(msg.find("training.max_steps"), std::string::npos) << msg;
}

TEST(Config, OutOfRangeValueIsRejected) {
  TempDir dir;
  std::string msg = load_error(dir, "optimizer:\n  lr: -0.001\n");
  expect_one_line_naming(msg, "config.yaml:2:7", "optimizer.lr");
  EXPECT_NE(msg.find("expected a value > 0, got -0.001"), std::string::npos) << msg;

  msg = load_error(dir, "dpo:\n  label_smoothing: 0.5\n");
  EXPECT_NE(msg.find("dpo.label_smoothing"), std::string::npos) << msg;
  EXPECT_NE(msg.find(">= 0 and < 0.5"), std::string::npos) << msg;

  msg = load_error(dir, "server:\n  port: 70000\n");
  EXPECT_NE(msg.find("server.port"), std::string::npos) << msg;

  msg = load_error(dir, "model:\n  hidden_size: 99999999999\n");
  EXPECT_NE(msg.find("does not fit in 32 bits"), std::string::npos) << msg;
}

TEST(Config, ValueOutsideChoicesIsRejected) {
  TempDir dir;
  const std::string msg = load_error(dir, "dpo:\n  loss_type: sigmod\n");
  expect_one_line_naming(msg, "config.yaml", "dpo.loss_type");
  EXPECT_NE(msg.find("expected one of sigmoid, ipo, hinge, robust; got 'sigmod'"),
            std::string::npos)
      << msg;
}

TEST(Config, BadYamlNamesFileAndPosition) {
  TempDir dir;
  const std::string msg = load_error(dir, "model:\n  hidden_size: [64\n");
  EXPECT_NE(msg.find("config.yaml:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("invalid YAML"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST(Config, MissingFileIsReported) {
  try {
    load_experiment_config("/nonexistent/dir/run.yaml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/run.yaml: cannot open"),
              std::string::npos)
        << e.what();
  }
}

TEST(Config, TopLevelMustBeAMapping) {
  TempDir dir;
  EXPECT_NE(load_error(dir, "- a\n- b\n").find("expected a mapping"), std::string::npos);
}

TEST(Config, DuplicateAndConflictingKeys) {
  TempDir dir;
  std::string msg = load_error(dir, "sft: {}\ndpo:\n  beta: 0.2\n");
  expect_one_line_naming(msg, "config.yaml", "dpo");
  EXPECT_NE(msg.find("conflicts with 'sft'"), std::string::npos) << msg;
}

TEST(Config, EnvironmentVariablesAreSubstituted) {
  TempDir dir;
  setenv("RUDDER_TEST_OUT", "/tmp/out", 1);
  unsetenv("RUDDER_TEST_UNSET");
  const std::string path =
      dir.write("env.yaml",
                "output_dir: ${RUDDER_TEST_OUT}/x\nname: ${RUDDER_TEST_UNSET:-fallback}\n"
                "model:\n  path: $${literal}\n");
  const ExperimentConfig c = load_experiment_config(path);
  EXPECT_EQ(c.output_dir(), "/tmp/out/x");
  EXPECT_EQ(c.name(), "fallback");
  EXPECT_EQ(c.model().path(), "${literal}");

  const std::string msg = load_error(dir, "name: ${RUDDER_TEST_UNSET}\n");
  expect_one_line_naming(msg, "config.yaml", "name");
  EXPECT_NE(msg.find("environment variable RUDDER_TEST_UNSET is not set"), std::string::npos)
      << msg;
}

TEST(Config, OverridesApplyAndAreValidated) {
  TempDir dir;
  const std::string path = dir.write("base.yaml", "optimizer:\n  lr: 0.1\n");
  const ExperimentConfig c =
      load_experiment_config(path, {"optimizer.lr=3e-4", "training.max_steps=7",
                                    "rollout.endpoints=[a:1, b:2]", "dpo.beta=0.5"});
  EXPECT_DOUBLE_EQ(c.optimizer().lr(), 3e-4);
  EXPECT_EQ(c.training().max_steps(), 7u);
  ASSERT_EQ(c.rollout().endpoints_size(), 2);
  EXPECT_EQ(c.rollout().endpoints(1), "b:2");
  EXPECT_DOUBLE_EQ(c.dpo().beta(), 0.5);

  std::string msg = load_error(dir, "{}", {"optimizer.lrr=1"});
  EXPECT_NE(msg.find("(--set optimizer.lrr)"), std::string::npos) << msg;
  msg = load_error(dir, "{}", {"optimizer.lr=-1"});
  EXPECT_NE(msg.find("optimizer.lr"), std::string::npos) << msg;
  msg = load_error(dir, "{}", {"no_equals_sign"});
  EXPECT_NE(msg.find("expected key.path=value"), std::string::npos) << msg;
  msg = load_error(dir, "name: x\n", {"name.inner=1"});
  EXPECT_NE(msg.find("'name' is not a mapping"), std::string::npos) << msg;
}

TEST(Config, FailedLoadLeavesOutputUntouched) {
  TempDir dir;
  ExperimentConfig c;
  c.set_name("keep");
  EXPECT_THROW(load_config(dir.write("bad.yaml", "optimizer:\n  lr: 0\n"), {}, &c), ConfigError);
  EXPECT_EQ(c.name(), "keep");
}

TEST(Config, ResolvedYamlLoadsBackToTheSameConfig) {
  const ExperimentConfig first =
      load_experiment_config(std::string(RUDDER_SOURCE_DIR) + "/configs/example.yaml");
  const std::string yaml = config_to_yaml(first);
  EXPECT_NE(yaml.find("beta: 0.1"), std::string::npos) << yaml;
  ExperimentConfig second;
  parse_config_text(yaml, "resolved", {}, &second);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(first, second))
      << first.DebugString() << "\nvs\n"
      << second.DebugString();
}

}  // namespace
}  // namespace rudder::core
