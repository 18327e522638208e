// `rudder train` and `rudder launch` as real processes: improvement, exact resume after
// SIGKILL (1 and 2 ranks, mid-epoch and on an epoch boundary), SIGTERM, and data parallelism.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/safetensors.h"
#include "tests/support/tensor_testing.h"
#include "tests/support/test_support.h"

namespace rudder::trainer {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::ProcessResult;
using testing::TempDir;

// 40 examples, 8 per step: 5 steps per epoch.
constexpr const char* kTinyConfig = R"(name: tiny
seed: 7
model: {hidden_size: 32, num_layers: 2, num_heads: 2, num_kv_heads: 1, intermediate_size: 64, max_position_embeddings: 64}
data: {synthetic: {tasks: [mixed], num_train: 40, num_eval: 8}, max_length: 32, max_prompt_length: 16}
sft: {}
optimizer: {lr: 1.0e-3, weight_decay: 0.01}
schedule: {kind: cosine, warmup_steps: 2}
training: {max_steps: 40, micro_batch_size: 2, global_batch_size: 8, log_every: 1}
checkpoint: {keep_last: 0}
eval: {num_prompts: 4, sampling: {max_new_tokens: 4, temperature: 0}}
)";

std::vector<std::string> train_command(const std::string& config, const std::string& out, int nproc,
                                       const std::vector<std::string>& extra) {
  std::vector<std::string> cmd = {testing::rudder_binary()};
  if (nproc > 1) cmd.insert(cmd.end(), {"launch", "--nproc", std::to_string(nproc), "--"});
  cmd.insert(cmd.end(), {"train", config, "--set", "output_dir=" + out});
  cmd.insert(cmd.end(), extra.begin(), extra.end());
  return cmd;
}

ProcessResult run_to_end(const std::vector<std::string>& cmd, const std::string& log_dir) {
  const int pid = testing::spawn_process(cmd, log_dir + "/out.txt", log_dir + "/err.txt");
  ProcessResult r = testing::wait_process(pid);
  r.out = testing::read_file(log_dir + "/out.txt");
  r.err = testing::read_file(log_dir + "/err.txt");
  return r;
}

uint64_t latest_step(const std::string& out) {
  const std::string latest = testing::read_file(out + "/checkpoints/latest");
  return latest.size() > 5 ? std::stoull(latest.substr(5)) : 0;
}

// Runs to completion uninterrupted, then again killed with SIGKILL after the first checkpoint
// and resumed with --resume auto; the final weights must be bit-identical.
void expect_exact_resume(int nproc, int checkpoint_every,
                         const std::string& config_text = kTinyConfig) {
  TempDir dir;
  const std::string config = dir.write("tiny.yaml", config_text);
  const std::vector<std::string> sets = {
      "--set", "checkpoint.every_steps=" + std::to_string(checkpoint_every)};
  const std::string straight = dir.path() + "/straight", killed = dir.path() + "/killed";
  fs::create_directories(straight);
  fs::create_directories(killed);
  ProcessResult r = run_to_end(train_command(config, straight, nproc, sets), straight);
  ASSERT_EQ(r.exit_code, 0) << r.err;

  const int pid = testing::spawn_process(train_command(config, killed, nproc, sets),
                                         killed + "/out1.txt", killed + "/err1.txt");
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (latest_step(killed) < static_cast<uint64_t>(checkpoint_every) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(2ms);
  }
  kill(-pid, SIGKILL);  // the whole process group: launcher and ranks
  testing::wait_process(pid);
  const uint64_t killed_at = latest_step(killed);
  ASSERT_GE(killed_at, static_cast<uint64_t>(checkpoint_every))
      << testing::read_file(killed + "/err1.txt");
  ASSERT_LT(killed_at, 40u) << "the run finished before it could be killed";
  ASSERT_FALSE(fs::exists(killed + "/final"));

  std::cout << "killed after checkpoint step " << killed_at << " (" << nproc << " rank(s))\n";
  auto resume = sets;
  resume.insert(resume.end(), {"--resume", "auto"});
  r = run_to_end(train_command(config, killed, nproc, resume), killed);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("resumed from"), std::string::npos) << r.err;
  // Every weight file of the export: the model, and a reward model's head.
  int compared = 0;
  for (const auto& entry : fs::directory_iterator(straight + "/final")) {
    if (entry.path().extension() != ".safetensors") continue;
    const std::string name = entry.path().filename().string();
    const std::string a = testing::read_file(entry.path().string());
    const std::string b = testing::read_file(killed + "/final/" + name);
    ASSERT_FALSE(a.empty()) << name;
    EXPECT_TRUE(a == b) << name << " differs after resuming from step " << killed_at;
    ++compared;
  }
  // A GenARM reward model is a causal LM alone; the other reward models add a file of heads.
  const bool heads = config_text.find("reward_model:") != std::string::npos &&
                     config_text.find("kind: genarm") == std::string::npos;
  EXPECT_GE(compared, heads ? 2 : 1);
}

TEST(TrainIntegration, SftLowersEvalLossAndRaisesGroundTruthScore) {
  TempDir dir;
  const std::string config = std::string(RUDDER_SOURCE_DIR) + "/configs/sft.yaml";
  const ProcessResult r = run_to_end(
      train_command(config, dir.path(), 1,
                    {"--set", "training.max_steps=200", "--set", "eval.num_prompts=100"}),
      dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  auto figure = [&](const std::string& name) {
    const std::regex re(name + " ([0-9.e+-]+)");
    EXPECT_TRUE(std::regex_search(r.out, m, re)) << name << " missing in " << r.out;
    return std::stod(m[1]);
  };
  const double loss0 = figure("initial eval/loss"), loss1 = figure("final eval/loss");
  const double score0 = figure("initial eval/ground_truth_score"),
               score1 = figure("final eval/ground_truth_score");
  std::cout << "eval loss " << loss0 << " -> " << loss1 << ", ground-truth score " << score0
            << " -> " << score1 << "\n";
  EXPECT_LT(loss1, 0.5 * loss0);
  EXPECT_GT(score1, score0 + 0.3);
  EXPECT_TRUE(fs::exists(dir.path() + "/final/config.json"));
}

TEST(TrainIntegration, KillAndResumeIsBitIdenticalMidEpoch) { expect_exact_resume(1, 3); }

TEST(TrainIntegration, KillAndResumeIsBitIdenticalOnEpochBoundary) { expect_exact_resume(1, 5); }

TEST(TrainIntegration, KillAndResumeIsBitIdenticalWithTwoRanks) { expect_exact_resume(2, 3); }

// bfloat16 weights: the checkpoint carries their float32 masters and AdamW state, so the
// resumed run rounds the same masters into the same bfloat16 weights.
TEST(TrainIntegration, Bfloat16WeightsKillAndResumeIsBitIdentical) {
  expect_exact_resume(1, 3, std::string(kTinyConfig) + "dtype: bfloat16\n");
}

TEST(TrainIntegration, Bf16AutocastKillAndResumeIsBitIdentical) {
  std::string text = kTinyConfig;
  text.replace(text.find("training: {"), 11, "training: {bf16_autocast: true, ");
  expect_exact_resume(1, 3, text);
}

// The same tiny model and data as preference methods (corrupted-answer pairs).
std::string tiny_preference_config(const std::string& method) {
  std::string text = kTinyConfig;
  const std::string sft = "sft: {}\n";
  text.replace(text.find(sft), sft.size(), method + "\n");
  return text;
}

TEST(TrainIntegration, DpoKillAndResumeIsBitIdentical) {
  expect_exact_resume(1, 3, tiny_preference_config("dpo: {beta: 0.5, reference_mode: precompute}"));
}

TEST(TrainIntegration, RewardModelKillAndResumeIsBitIdentical) {
  expect_exact_resume(1, 3, tiny_preference_config("reward_model: {kind: scalar}"));
}

TEST(TrainIntegration, GenArmKillAndResumeIsBitIdentical) {
  std::string text = tiny_preference_config("reward_model: {kind: genarm, genarm: {beta_r: 0.5}}");
  text.replace(text.find("model: {"), 8, "model: {lora: {rank: 4}, ");
  expect_exact_resume(1, 3, text);
}

// The checkpoint at step 3 lies past phase 1 (2 steps): resuming restores the frozen base.
TEST(TrainIntegration, DmoermKillAndResumeIsBitIdentical) {
  expect_exact_resume(
      1, 3, tiny_preference_config("reward_model: {kind: dmoerm, dmoerm: {base_steps: 2}}"));
}

// GeDi's class-conditional LM, with its learned logit scale, on the synthetic reviews.
TEST(TrainIntegration, GediKillAndResumeIsBitIdentical) {
  std::string text = tiny_preference_config("gedi: {gen_weight: 0.5}");
  const std::string mixed = "tasks: [mixed]";
  text.replace(text.find(mixed), mixed.size(), "tasks: [sentiment]");
  expect_exact_resume(1, 3, text);
}

// GenARM and DMoERM export a reward model directory that `rudder score` loads by its kind.
TEST(TrainIntegration, RewardModelKindsExportDirectoriesThatScore) {
  for (const std::string method :
       {"reward_model: {kind: genarm}", "reward_model: {kind: dmoerm, dmoerm: {base_steps: 3}}"}) {
    TempDir dir;
    const std::string config = dir.write("tiny.yaml", tiny_preference_config(method));
    ProcessResult r = run_to_end(
        train_command(config, dir.path(), 1, {"--set", "training.max_steps=6"}), dir.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const char* file : {"config.json", "model.safetensors", "reward_config.json"})
      EXPECT_TRUE(fs::exists(dir.path() + "/final/" + file)) << method << ": " << file;
    const std::string in = dir.write("in.jsonl", "{\"prompt\": \"2+2=\", \"response\": \"4\"}\n");
    r = testing::run_process({testing::rudder_binary(), "score", config, "--set",
                              "reward.model_path=" + dir.path() + "/final", "--in", in, "--out",
                              dir.path() + "/out.jsonl"});
    ASSERT_EQ(r.exit_code, 0) << method << ": " << r.err;
    EXPECT_NE(testing::read_file(dir.path() + "/out.jsonl").find("\"reward\""), std::string::npos);
  }
}

TEST(TrainIntegration, ResumingWithAChangedBatchNeedsAnOverride) {
  TempDir dir;
  const std::string config = dir.write("tiny.yaml", kTinyConfig);
  ProcessResult r = run_to_end(
      train_command(config, dir.path(), 1, {"--set", "training.max_steps=4"}), dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> changed = {
      "--set", "training.max_steps=6", "--set", "training.global_batch_size=4", "--resume", "auto"};
  r = run_to_end(train_command(config, dir.path(), 1, changed), dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("global_batch_size 8, now 4; pass --allow-config-change"), std::string::npos)
      << r.err;
  auto allowed = changed;
  allowed.push_back("--allow-config-change");
  r = run_to_end(train_command(config, dir.path(), 1, allowed), dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("steps 6"), std::string::npos) << r.out;
}

TEST(TrainIntegration, SigtermCheckpointsAndExitsZero) {
  TempDir dir;
  const std::string config = dir.write("tiny.yaml", kTinyConfig);
  const int pid = testing::spawn_process(
      train_command(config, dir.path(), 1,
                    {"--set", "training.max_steps=100000", "--set", "checkpoint.every_steps=0"}),
      dir.path() + "/out.txt", dir.path() + "/err.txt");
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (testing::read_file(dir.path() + "/err.txt").find("step 3/") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  kill(pid, SIGTERM);
  const ProcessResult r = testing::wait_process(pid);
  const std::string err = testing::read_file(dir.path() + "/err.txt");
  EXPECT_EQ(r.exit_code, 0) << err;
  const uint64_t step = latest_step(dir.path());
  EXPECT_GE(step, 3u) << err;
  EXPECT_LT(step, 100000u);
  EXPECT_NE(err.find("stop requested: checkpointed at step " + std::to_string(step)),
            std::string::npos)
      << err;
}

TEST(TrainIntegration, TwoGlooRanksMatchOneRankOnTheSameGlobalBatch) {
  TempDir dir;
  const std::string config = dir.write("tiny.yaml", kTinyConfig);
  const std::vector<std::string> sets = {"--set", "training.max_steps=10"};
  const std::string one = dir.path() + "/one", two = dir.path() + "/two";
  fs::create_directories(one);
  fs::create_directories(two);
  // One rank: 8 examples per step in micro-batches of 2. Two ranks: 4 each.
  ProcessResult r = run_to_end(train_command(config, one, 1, sets), one);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_to_end(train_command(config, two, 2, sets), two);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto a = models::load_safetensors(one + "/final/model.safetensors").tensors;
  const auto b = models::load_safetensors(two + "/final/model.safetensors").tensors;
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (const auto& [name, t] : a) worst = std::max(worst, testing::max_abs_diff(t, b.at(name)));
  EXPECT_LE(worst, 1e-5);
  EXPECT_GT(testing::max_abs_diff(a.begin()->second, torch::zeros_like(a.begin()->second)), 0.0);
}

}  // namespace
}  // namespace rudder::trainer
