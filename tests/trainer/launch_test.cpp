// `rudder train` ranks started the way other launchers start them: torchrun >= 2, whose agent
// hosts the c10d store on MASTER_ADDR:MASTER_PORT (played here by the test process), and srun,
// which sets only Slurm's variables.
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "core/launcher.h"
#include "tests/support/test_support.h"

namespace rudder::trainer {
namespace {

namespace fs = std::filesystem;
using testing::ProcessResult;
using testing::TempDir;

// 40 examples, 8 per step, 4 steps; a rendezvous that goes wrong fails within 2 minutes.
constexpr const char* kTinyConfig = R"(name: tiny
seed: 7
model: {hidden_size: 32, num_layers: 2, num_heads: 2, num_kv_heads: 1, intermediate_size: 64, max_position_embeddings: 64}
data: {synthetic: {tasks: [mixed], num_train: 40, num_eval: 8}, max_length: 32, max_prompt_length: 16}
sft: {}
optimizer: {lr: 1.0e-3}
training: {max_steps: 4, micro_batch_size: 2, global_batch_size: 8, log_every: 1}
checkpoint: {keep_last: 0}
eval: {num_prompts: 4, sampling: {max_new_tokens: 4, temperature: 0}}
distributed: {timeout_seconds: 120}
)";

class LaunchTest : public ::testing::Test {
 protected:
  // Only the variables each test gives reach the ranks.
  void SetUp() override {
    for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                             "TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RESTART_COUNT",
                             "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"}) {
      unsetenv(name);
    }
    config_ = dir_.write("tiny.yaml", kTinyConfig);
  }

  // Runs one `rudder train` per entry of `envs` at once and waits for all of them.
  std::vector<ProcessResult> run_ranks(const std::vector<std::vector<std::string>>& envs) {
    const std::vector<std::string> cmd = {testing::rudder_binary(), "train", config_, "--set",
                                          "output_dir=" + out()};
    std::vector<int> pids;
    for (size_t r = 0; r < envs.size(); ++r) {
      pids.push_back(testing::spawn_process(cmd, log(r, "out"), log(r, "err"), envs[r]));
    }
    std::vector<ProcessResult> results;
    for (size_t r = 0; r < pids.size(); ++r) {
      results.push_back(testing::wait_process(pids[r]));
      results.back().out = testing::read_file(log(r, "out"));
      results.back().err = testing::read_file(log(r, "err"));
    }
    return results;
  }

  std::string out() const { return dir_.path() + "/out"; }
  std::string log(size_t rank, const std::string& stream) const {
    return dir_.path() + "/rank" + std::to_string(rank) + "." + stream;
  }

  TempDir dir_;
  std::string config_;
};

TEST_F(LaunchTest, TorchrunAgentStoreMakesEveryRankAClient) {
  // The agent: a TCPStore server on MASTER_PORT, as torchrun's static rendezvous creates it.
  // Rank 0 trying to host the store too would fail to bind the port.
  c10d::TCPStoreOptions options;
  options.port = 0;  // the kernel's pick; no race with other tests
  options.isServer = true;
  options.waitWorkers = false;
  options.timeout = std::chrono::seconds(120);
  c10d::TCPStore agent_store("127.0.0.1", options);
  const std::string port = std::to_string(agent_store.getPort());
  std::vector<std::vector<std::string>> envs;
  for (int rank = 0; rank < 2; ++rank) {
    envs.push_back({"RANK=" + std::to_string(rank), "WORLD_SIZE=2",
                    "LOCAL_RANK=" + std::to_string(rank), "MASTER_ADDR=127.0.0.1",
                    "MASTER_PORT=" + port, "TORCHELASTIC_USE_AGENT_STORE=True",
                    "TORCHELASTIC_RESTART_COUNT=0"});
  }
  const auto results = run_ranks(envs);
  for (size_t r = 0; r < results.size(); ++r) {
    EXPECT_EQ(results[r].exit_code, 0) << "rank " << r << ":\n" << results[r].err;
    EXPECT_NE(results[r].err.find("store hosted by torchrun's agent"), std::string::npos)
        << "rank " << r << ":\n"
        << results[r].err;
  }
  EXPECT_NE(results[0].out.find("steps 4"), std::string::npos) << results[0].out;
  EXPECT_TRUE(fs::exists(out() + "/final/model.safetensors"));
}

TEST_F(LaunchTest, SlurmVariablesAloneStartTheJob) {
  const std::string port = std::to_string(core::free_local_port());
  std::vector<std::vector<std::string>> envs;
  for (int rank = 0; rank < 2; ++rank) {
    envs.push_back({"SLURM_PROCID=" + std::to_string(rank), "SLURM_NTASKS=2",
                    "SLURM_LOCALID=" + std::to_string(rank), "MASTER_ADDR=127.0.0.1",
                    "MASTER_PORT=" + port});
  }
  const auto results = run_ranks(envs);
  for (size_t r = 0; r < results.size(); ++r) {
    EXPECT_EQ(results[r].exit_code, 0) << "rank " << r << ":\n" << results[r].err;
    EXPECT_NE(results[r].err.find("rank " + std::to_string(r) + " of 2 joined"), std::string::npos)
        << "rank " << r << ":\n"
        << results[r].err;
  }
  EXPECT_NE(results[0].out.find("steps 4"), std::string::npos) << results[0].out;
  EXPECT_TRUE(fs::exists(out() + "/final/model.safetensors"));
}

TEST_F(LaunchTest, AMissingSlurmVariableIsNamed) {
  const auto results = run_ranks(
      {{"SLURM_PROCID=0", "SLURM_LOCALID=0", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=29500"}});
  EXPECT_EQ(results[0].exit_code, 1);
  EXPECT_NE(results[0].err.find("SLURM_PROCID=0 (RANK unset) needs SLURM_NTASKS, which is not set"),
            std::string::npos)
      << results[0].err;
  EXPECT_FALSE(fs::exists(out() + "/final"));
}

}  // namespace
}  // namespace rudder::trainer
