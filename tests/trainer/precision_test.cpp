// Mixed precision in the loop: bf16 autocast (with and without activation checkpointing) and
// bfloat16 weights (with float32 masters) train SFT of the embedded default to float32's eval
// loss, and a bfloat16 model written by training loads back and scores exactly as it did before
// saving.
#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/config.h"
#include "core/error.h"
#include "models/safetensors.h"
#include "tests/support/test_support.h"
#include "trainer/checkpoint.h"
#include "trainer/experiment.h"

namespace rudder::trainer {
namespace {

namespace fs = std::filesystem;

// The default byte tokenizer and Llama on the synthetic tasks, smaller and shorter than
// configs/sft.yaml so four runs take seconds.
constexpr const char* kSftConfig = R"(name: precision
seed: 1234
model: {hidden_size: 64, num_layers: 2, num_heads: 4, num_kv_heads: 2, intermediate_size: 172, max_position_embeddings: 64}
data: {synthetic: {tasks: [mixed], num_train: 960, num_eval: 64}, max_length: 64, max_prompt_length: 32}
sft: {mask_prompt: true}
optimizer: {lr: 3.0e-3, weight_decay: 0.01}
schedule: {kind: cosine, warmup_steps: 6, min_lr_ratio: 0.1}
training: {max_steps: 60, micro_batch_size: 8, global_batch_size: 16, log_every: 1000}
checkpoint: {keep_last: 1}
eval: {num_prompts: 1, sampling: {max_new_tokens: 2, temperature: 0}}
)";

ExperimentConfig sft_config(const std::string& out, const std::vector<std::string>& sets) {
  ExperimentConfig c;
  std::vector<std::string> all = {"output_dir=" + out};
  all.insert(all.end(), sets.begin(), sets.end());
  core::parse_config_text(kSftConfig, "precision test", all, &c);
  return c;
}

struct TrainedRun {
  double initial_loss = 0, final_loss = 0;
  std::string last_checkpoint;
};

TrainedRun train(const std::string& out, const std::vector<std::string>& sets) {
  auto group = core::ProcessGroup::single();
  const TrainResult r = run_experiment(sft_config(out, sets), *group, {});
  return {r.initial_eval.at("eval/loss"), r.final_eval.at("eval/loss"), r.last_checkpoint};
}

class Precision : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    float32_ = train(dir_->path() + "/float32", {});
    std::cout << "float32 eval loss " << float32_.initial_loss << " -> " << float32_.final_loss
              << "\n";
  }
  static void TearDownTestSuite() { delete dir_; }
  static testing::TempDir* dir_;
  static TrainedRun float32_;
};
testing::TempDir* Precision::dir_ = nullptr;
TrainedRun Precision::float32_;

TEST_F(Precision, Bf16AutocastReachesFloat32EvalLoss) {
  const TrainedRun bf16 = train(dir_->path() + "/autocast", {"training.bf16_autocast=true"});
  std::cout << "bf16 autocast eval loss " << bf16.final_loss << "\n";
  EXPECT_LT(float32_.final_loss, 0.8 * float32_.initial_loss) << "float32 did not learn";
  EXPECT_NEAR(bf16.final_loss, float32_.final_loss, 0.05);
}

// A checkpointed layer replays its forward under the autocast state the forward ran with.
TEST_F(Precision, Bf16AutocastWithActivationCheckpointingReachesFloat32EvalLoss) {
  const TrainedRun bf16 =
      train(dir_->path() + "/autocast_checkpointed",
            {"training.bf16_autocast=true", "training.activation_checkpointing=true"});
  std::cout << "bf16 autocast, checkpointed layers: eval loss " << bf16.final_loss << "\n";
  EXPECT_NEAR(bf16.final_loss, float32_.final_loss, 0.05);
}

TEST_F(Precision, Bfloat16WeightsReachFloat32EvalLoss) {
  const std::string out = dir_->path() + "/bfloat16";
  const TrainedRun bf16 = train(out, {"dtype=bfloat16"});
  std::cout << "bfloat16 weights eval loss " << bf16.final_loss << "\n";
  EXPECT_NEAR(bf16.final_loss, float32_.final_loss, 0.05);

  // The checkpoint holds bfloat16 weights and their float32 masters.
  const CheckpointState s = load_checkpoint(bf16.last_checkpoint);
  ASSERT_FALSE(s.model.empty());
  for (const auto& [name, t] : s.model) EXPECT_EQ(t.scalar_type(), torch::kBFloat16) << name;
  for (const auto& [name, t] : s.model) {
    const auto master = s.optimizer.find("master." + name);
    ASSERT_NE(master, s.optimizer.end()) << name;
    EXPECT_EQ(master->second.scalar_type(), torch::kFloat) << name;
    EXPECT_TRUE(torch::equal(master->second.to(torch::kBFloat16), t)) << name;
  }

  // The exported model is BF16 on disk and scores exactly as the trained one did.
  for (const auto& [name, t] : models::load_safetensors(out + "/final/model.safetensors").tensors)
    EXPECT_EQ(t.scalar_type(), torch::kBFloat16) << name;
  Experiment e = build_experiment(sft_config(out, {"dtype=bfloat16"}));
  e.policy->load_state_dict(models::load_safetensors(out + "/final/model.safetensors").tensors,
                            "final/model.safetensors");
  e.policy->to(torch::kBFloat16);
  EXPECT_EQ(e.algorithm->evaluate().at("eval/loss"), bf16.final_loss);
}

TEST(PrecisionSettings, Bfloat16WeightsRefuseAutocast) {
  testing::TempDir dir;
  try {
    build_experiment(sft_config(dir.path(), {"dtype=bfloat16", "training.bf16_autocast=true"}));
    FAIL() << "dtype bfloat16 with bf16_autocast was accepted";
  } catch (const core::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("bf16_autocast"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace rudder::trainer
