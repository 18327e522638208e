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

// `rudder train configs/gedi_cclm.yaml` writes a class-conditional LM that `rudder generate`
// decodes with (rollout.decoder gedi); GenARM takes any model of the vocabulary as an ARM.
TEST_F(GenerateCli, GuidedDecodersLoadTheirModels) {
  const std::string cclm = dir.path() + "/cclm";
  const ProcessResult trained = run_process(
      {rudder_binary(), "train", std::string(RUDDER_SOURCE_DIR) + "/configs/gedi_cclm.yaml",
       "--set", "output_dir=" + cclm, "--set", "training.max_steps=3", "--set",
       "data.synthetic.num_train=64", "--set", "data.synthetic.num_eval=16", "--set",
       "checkpoint.every_steps=0"});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const auto codes = nlohmann::json::parse(testing::read_file(cclm + "/final/gedi_config.json"));
  EXPECT_EQ(codes.at("desired_code"), "+");
  EXPECT_GT(codes.at("logit_scale").get<double>(), 0.0);
  for (const std::string target : {"desired", "anti"}) {
    const ProcessResult r =
        run_process({rudder_binary(), "generate", config, "--prompts", prompts, "--n", "2", "--set",
                     "rollout.decoder=gedi", "--set", "rollout.gedi.cclm_path=" + cclm + "/final",
                     "--set", "rollout.gedi.target=" + target});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("\"samples\""), std::string::npos) << r.out;
  }
  const ProcessResult genarm = run_process(
      {rudder_binary(), "generate", config, "--prompts", prompts, "--set", "rollout.decoder=genarm",
       "--set", "rollout.genarm.arm_paths=[" + cclm + "/final, " + cclm + "/final]", "--set",
       "rollout.genarm.weights=[0.5, 0.5]"});
  ASSERT_EQ(genarm.exit_code, 0) << genarm.err;
  // A guided decoder without its model, or with a model that is not one, is named.
  const ProcessResult no_arm = run_process({rudder_binary(), "generate", config, "--prompts",
                                            prompts, "--set", "rollout.decoder=genarm"});
  EXPECT_EQ(no_arm.exit_code, 1);
  EXPECT_NE(no_arm.err.find("rollout.genarm.arm_paths"), std::string::npos) << no_arm.err;
  const ProcessResult not_cclm = run_process({rudder_binary(), "generate", config, "--prompts",
                                              prompts, "--set", "rollout.decoder=gedi", "--set",
                                              "rollout.gedi.cclm_path=" + dir.path() + "/model"});
  EXPECT_EQ(not_cclm.exit_code, 1);
  EXPECT_NE(not_cclm.err.find("gedi_config.json"), std::string::npos) << not_cclm.err;
}

}  // namespace
}  // namespace rudder::app
