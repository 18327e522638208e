// A test-only on-policy method (on_policy_method.h) through the same loop as every method:
// several updates per batch, exact resume after SIGKILL with sampling at temperature 1, two Gloo
// ranks, and the loop's contract checks. The binary doubles as the trainer process the tests
// start and kill: `on_policy_tests --train CONFIG OUT [--resume]`.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/config.h"
#include "core/distributed.h"
#include "core/launcher.h"
#include "core/error.h"
#include "models/safetensors.h"
#include "tests/support/test_support.h"
#include "tests/trainer/on_policy_method.h"
#include "trainer/experiment.h"

namespace rudder::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// 16 prompts, 4 per batch x 2 samples, 4 updates per batch: 16 steps = 4 batches = 2 iterations.
constexpr const char* kConfig = R"(name: on-policy
seed: 11
model: {hidden_size: 32, num_layers: 2, num_heads: 2, num_kv_heads: 1, intermediate_size: 64, max_position_embeddings: 64}
data: {synthetic: {tasks: [mixed], num_train: 16, num_eval: 4}, max_length: 32, max_prompt_length: 16}
rollout: {sampling: {temperature: 1, max_new_tokens: 6}}
optimizer: {lr: 1.0e-3}
training: {max_steps: 16, micro_batch_size: 2, global_batch_size: 4, log_every: 1}
)";

int train_main(int argc, char** argv) {
  try {
    register_on_policy_recipe();
    ExperimentConfig config =
        core::load_experiment_config(argv[2], {"output_dir=" + std::string(argv[3])});
    auto group = core::ProcessGroup::from_environment(config.distributed());
    trainer::TrainOptions options;
    options.recipe = kOnPolicyRecipe;
    if (argc > 4 && std::string(argv[4]) == "--resume") options.resume = "auto";
    const auto result = trainer::run_experiment(config, *group, options);
    std::cout << "steps " << result.steps << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

std::string self_binary() { return fs::read_symlink("/proc/self/exe").string(); }

// Starts `nproc` ranks training into `out`; returns their pids.
std::vector<int> start_ranks(const std::string& config, const std::string& out, int nproc,
                             bool resume, const std::string& log_tag) {
  fs::create_directories(out);
  std::vector<std::string> argv = {self_binary(), "--train", config, out};
  if (resume) argv.push_back("--resume");
  const std::string port = std::to_string(core::free_local_port());
  std::vector<int> pids;
  for (int r = 0; r < nproc; ++r) {
    std::vector<std::string> env;
    if (nproc > 1) {
      env = {"RANK=" + std::to_string(r), "LOCAL_RANK=" + std::to_string(r),
             "WORLD_SIZE=" + std::to_string(nproc), "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + port};
    }
    const std::string base = out + "/" + log_tag + "-rank" + std::to_string(r);
    pids.push_back(spawn_process(argv, base + ".out", base + ".err", env));
  }
  return pids;
}

void expect_all_succeed(const std::vector<int>& pids, const std::string& out,
                        const std::string& log_tag) {
  for (size_t r = 0; r < pids.size(); ++r) {
    const ProcessResult p = wait_process(pids[r]);
    EXPECT_EQ(p.exit_code, 0) << read_file(out + "/" + log_tag + "-rank" + std::to_string(r) +
                                           ".err");
  }
}

uint64_t latest_step(const std::string& out) {
  const std::string latest = read_file(out + "/checkpoints/latest");
  return latest.size() > 5 ? std::stoull(latest.substr(5)) : 0;
}

// An uninterrupted run against one killed (SIGKILL) after its first checkpoint and resumed.
// Checkpoints fall on batch boundaries (every 4 steps): `every_steps` 6 puts the periodic
// checkpoints inside batches, so the first lands at step 8.
void expect_exact_resume(int nproc, int every_steps = 4) {
  TempDir dir;
  const std::string config = dir.write(
      "on_policy.yaml", std::string(kConfig) + "checkpoint: {keep_last: 0, every_steps: " +
                            std::to_string(every_steps) + "}\n");
  const std::string straight = dir.path() + "/straight", killed = dir.path() + "/killed";
  expect_all_succeed(start_ranks(config, straight, nproc, false, "run"), straight, "run");

  const auto pids = start_ranks(config, killed, nproc, false, "first");
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (latest_step(killed) < 4 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(2ms);
  for (int pid : pids) kill(-pid, SIGKILL);
  for (int pid : pids) wait_process(pid);
  const uint64_t killed_at = latest_step(killed);
  ASSERT_GE(killed_at, 4u) << read_file(killed + "/first-rank0.err");
  EXPECT_EQ(killed_at % 4, 0u) << "a checkpoint inside a batch";
  ASSERT_LT(killed_at, 16u) << "the run finished before it could be killed";
  std::cout << "killed after checkpoint step " << killed_at << " (" << nproc << " rank(s))\n";

  expect_all_succeed(start_ranks(config, killed, nproc, true, "resumed"), killed, "resumed");
  EXPECT_NE(read_file(killed + "/resumed-rank0.err").find("resumed from"), std::string::npos);
  const std::string a = read_file(straight + "/final/model.safetensors");
  const std::string b = read_file(killed + "/final/model.safetensors");
  ASSERT_FALSE(a.empty()) << read_file(straight + "/run-rank0.err");
  EXPECT_TRUE(a == b) << "final weights differ after resuming from step " << killed_at;
}

TEST(OnPolicy, TrainsThroughTheLoopWithSeveralUpdatesPerBatch) {
  register_on_policy_recipe();
  TempDir dir;
  ExperimentConfig config;
  core::parse_config_text(
      kConfig, "on-policy test",
      {"output_dir=" + dir.path(), "checkpoint.every_steps=4", "checkpoint.keep_last=0"}, &config);
  auto group = core::ProcessGroup::single();
  trainer::TrainOptions options;
  options.recipe = kOnPolicyRecipe;
  const auto result = trainer::run_experiment(config, *group, options);
  EXPECT_EQ(result.steps, 16u);
  EXPECT_TRUE(std::isfinite(result.last_loss));
  // Checkpoints land on batch boundaries (4 updates each) and hold the method's and the source's
  // state: the refreshed reference, the shuffle generator, the KL coefficient, the sampler.
  const auto state =
      models::load_safetensors(dir.path() + "/checkpoints/step-00000008/state.safetensors").tensors;
  EXPECT_TRUE(state.count("method/shuffle") && state.count("rank0/sampler") &&
              state.count("rank0/rng_cpu") && state.count("method/loop.iteration"));
  EXPECT_EQ(state.at("method/iterations_seen").item<int64_t>(), 1);  // step 8 is a boundary
  EXPECT_DOUBLE_EQ(state.at("method/kl_coef").item<double>(), 0.015);
  const auto final_state =
      models::load_safetensors(dir.path() + "/checkpoints/step-00000016/state.safetensors").tensors;
  EXPECT_EQ(final_state.at("method/iterations_seen").item<int64_t>(), 2);
  // The reference saved at step 16 is the policy of step 8, not the starting one.
  const auto step8 =
      models::load_safetensors(dir.path() + "/checkpoints/step-00000008/model.safetensors").tensors;
  const std::string name = "model.embed_tokens.weight";
  ASSERT_TRUE(step8.count(name));
  EXPECT_TRUE(torch::equal(final_state.at("method/reference." + name), step8.at(name)));
}

TEST(OnPolicy, KillAndResumeIsBitIdentical) { expect_exact_resume(1); }

TEST(OnPolicy, KillAndResumeIsBitIdenticalOnTwoGlooRanks) { expect_exact_resume(2); }

TEST(OnPolicy, PeriodicCheckpointsInsideABatchWaitForItsEnd) { expect_exact_resume(1, 6); }

TEST(OnPolicy, ARecipeThatSetsAnUnusedKeyIsRefused) {
  register_on_policy_recipe();
  ExperimentConfig config;
  core::parse_config_text(kConfig, "on-policy test", {"reward.model_path=/tmp/rm"}, &config);
  try {
    trainer::build_experiment(config, kOnPolicyRecipe);
    FAIL() << "expected reward.model_path to be refused";
  } catch (const core::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("reward.model_path is set, but method 'test_on_policy' "
                                         "does not use it"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace rudder::testing

int main(int argc, char** argv) {
  if (argc >= 4 && std::string(argv[1]) == "--train")
    return rudder::testing::train_main(argc, argv);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
