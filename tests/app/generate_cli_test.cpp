// `rudder generate`, run as a user runs it, on a tiny saved model.
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "models/causal_lm.h"
#include "models/hf_io.h"
#include "tests/support/test_support.h"
#include "tests/support/tiny_models.h"

namespace rudder::app {
namespace {

using testing::ProcessResult;
using testing::rudder_binary;
using testing::run_process;
using testing::TempDir;

class GenerateCli : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(3);
    models::save_hf_model(models::CausalLM(testing::tiny_llama()), dir.path() + "/model");
    config = dir.write("gen.yaml", "model:\n  path: " + dir.path() +
                                       "/model\nrollout:\n  sampling:\n    max_new_tokens: 6\n"
                                       "    temperature: 0.7\n    seed: 9\n");
    prompts =
        dir.write("prompts.jsonl", "{\"prompt\": \"review, positive:\"}\n{\"prompt\": \"7+8=\"}\n");
  }
  TempDir dir;
  std::string config, prompts;
};

TEST_F(GenerateCli, WritesSamplesForEveryPrompt) {
  const std::string out = dir.path() + "/out.jsonl";
  const ProcessResult r = run_process(
      {rudder_binary(), "generate", config, "--prompts", prompts, "--out", out, "--n", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(out);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].at("prompt"), "7+8=");
  for (const auto& line : lines) {
    ASSERT_EQ(line.at("samples").size(), 3u);
    for (const auto& s : line.at("samples")) EXPECT_LE(s.at("token_ids").size(), 6u);
  }
  // Seeded: the same command prints the same samples to stdout.
  const ProcessResult again =
      run_process({rudder_binary(), "generate", config, "--prompts", prompts, "--n", "3"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  std::ifstream first(out);
  const std::string written((std::istreambuf_iterator<char>(first)), {});
  EXPECT_EQ(again.out, written);
}

TEST_F(GenerateCli, BadUsageAndInputAreNamed) {
  EXPECT_EQ(run_process({rudder_binary(), "generate", config}).exit_code, 2);
  EXPECT_EQ(run_process({rudder_binary(), "generate", config, "--prompts", prompts, "--n", "0"})
                .exit_code,
            2);
  const std::string bad = dir.write("bad.jsonl", "{\"prompt\": 1}\n");
  const ProcessResult r = run_process({rudder_binary(), "generate", config, "--prompts", bad});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bad.jsonl:1"), std::string::npos) << r.err;
  const ProcessResult missing = run_process(
      {rudder_binary(), "generate", config, "--prompts", prompts, "--set", "model.path=/no/dir"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("/no/dir"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace rudder::app
