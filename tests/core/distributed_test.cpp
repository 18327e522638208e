#include "core/distributed.h"

#include <map>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"

namespace rudder::core {
namespace {

// A fake environment: exactly these variables are set.
EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

// The message of the InvalidArgument that reading `vars` throws ("" when none is thrown).
std::string error_of(std::map<std::string, std::string> vars) {
  try {
    launch_environment(env_of(std::move(vars)));
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  return "";
}

TEST(LaunchEnvironment, NoVariablesIsAWorldOfOne) {
  const LaunchEnvironment e = launch_environment(env_of({}));
  EXPECT_EQ(e.world_size, 1);
  EXPECT_EQ(e.rank, 0);
  EXPECT_TRUE(e.master_addr.empty());
}

TEST(LaunchEnvironment, TorchrunVariables) {
  const LaunchEnvironment e = launch_environment(env_of({{"RANK", "3"},
                                                         {"WORLD_SIZE", "4"},
                                                         {"LOCAL_RANK", "1"},
                                                         {"MASTER_ADDR", "node0"},
                                                         {"MASTER_PORT", "29500"}}));
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.master_addr, "node0");
  EXPECT_EQ(e.master_port, 29500);
  EXPECT_FALSE(e.agent_store);
  EXPECT_EQ(e.rank_source, "RANK");
}

TEST(LaunchEnvironment, TorchrunAgentStoreMakesEveryRankAClient) {
  const LaunchEnvironment e = launch_environment(env_of({{"RANK", "0"},
                                                         {"WORLD_SIZE", "2"},
                                                         {"MASTER_ADDR", "127.0.0.1"},
                                                         {"MASTER_PORT", "29500"},
                                                         {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                                                         {"TORCHELASTIC_RESTART_COUNT", "2"}}));
  EXPECT_TRUE(e.agent_store);
  EXPECT_EQ(e.restart_count, 2);
  EXPECT_FALSE(launch_environment(env_of({{"RANK", "0"},
                                          {"WORLD_SIZE", "2"},
                                          {"MASTER_ADDR", "h"},
                                          {"MASTER_PORT", "1"},
                                          {"TORCHELASTIC_USE_AGENT_STORE", "False"}}))
                   .agent_store);
}

TEST(LaunchEnvironment, SlurmVariablesWhenRankIsUnset) {
  const LaunchEnvironment e = launch_environment(env_of({{"SLURM_PROCID", "5"},
                                                         {"SLURM_NTASKS", "8"},
                                                         {"SLURM_LOCALID", "1"},
                                                         {"MASTER_ADDR", "node0"},
                                                         {"MASTER_PORT", "29500"}}));
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.rank_source, "SLURM_PROCID");
  // RANK wins over Slurm's variables (torchrun started inside an allocation).
  EXPECT_EQ(
      launch_environment(
          env_of(
              {{"RANK", "0"}, {"WORLD_SIZE", "1"}, {"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}}))
          .world_size,
      1);
}

TEST(LaunchEnvironment, AMissingVariableIsNamed) {
  EXPECT_EQ(error_of({{"SLURM_PROCID", "0"}, {"SLURM_LOCALID", "0"}}),
            "SLURM_PROCID=0 (RANK unset) needs SLURM_NTASKS, which is not set");
  EXPECT_EQ(error_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}}),
            "SLURM_PROCID=0 (RANK unset) needs SLURM_LOCALID, which is not set");
  EXPECT_EQ(error_of({{"SLURM_PROCID", "1"},
                      {"SLURM_NTASKS", "2"},
                      {"SLURM_LOCALID", "1"},
                      {"MASTER_PORT", "29500"}}),
            "a world of 2 ranks needs MASTER_ADDR (the host of the rendezvous store), which is "
            "not set");
  EXPECT_EQ(error_of({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}),
            "a world of 2 ranks needs MASTER_PORT, which is not set");
  EXPECT_EQ(error_of({{"RANK", "1"}}), "RANK=1 needs WORLD_SIZE, which is not set");
  EXPECT_EQ(error_of({{"WORLD_SIZE", "2"}}),
            "WORLD_SIZE=2 needs RANK (or SLURM_PROCID under srun), which is not set");
}

TEST(LaunchEnvironment, BadValuesAreNamed) {
  EXPECT_EQ(error_of({{"RANK", "x1"}, {"WORLD_SIZE", "2"}}),
            "environment variable RANK='x1' is not an integer");
  EXPECT_EQ(error_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}}), "RANK must be in [0, 2), got 2");
  EXPECT_EQ(error_of({{"SLURM_PROCID", "4"}, {"SLURM_NTASKS", "4"}, {"SLURM_LOCALID", "0"}}),
            "SLURM_PROCID must be in [0, 4), got 4");
  EXPECT_EQ(
      error_of(
          {{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}}),
      "MASTER_PORT must be in [1, 65535], got 70000");
}

}  // namespace
}  // namespace rudder::core
