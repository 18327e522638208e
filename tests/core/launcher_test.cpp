#include "core/launcher.h"

#include <chrono>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "tests/support/test_support.h"

namespace rudder::core {
namespace {

// Each rank writes the variables it was given to a file named after its rank.
TEST(LaunchLocal, EveryRankGetsItsVariablesAndOnePort) {
  testing::TempDir dir;
  const std::string script =
      "echo \"$RANK $LOCAL_RANK $WORLD_SIZE $MASTER_ADDR $MASTER_PORT\" > '" + dir.path() +
      "/rank'$RANK";
  EXPECT_EQ(launch_local(3, {"/bin/sh", "-c", script}), 0);
  std::set<std::string> ports;
  for (int rank = 0; rank < 3; ++rank) {
    const std::string line = testing::read_file(dir.path() + "/rank" + std::to_string(rank));
    const std::string r = std::to_string(rank);
    ASSERT_EQ(line.rfind(r + " " + r + " 3 127.0.0.1 ", 0), 0u) << line;
    ports.insert(line.substr(line.rfind(' ') + 1));
  }
  EXPECT_EQ(ports.size(), 1u) << "the ranks were given different MASTER_PORTs";
}

TEST(LaunchLocal, AFailingRankStopsTheOthersAndGivesItsExitCode) {
  // Rank 1 fails at once; rank 0 would sleep for a minute unless it is stopped.
  const auto begin = std::chrono::steady_clock::now();
  EXPECT_EQ(launch_local(2, {"/bin/sh", "-c", "if [ $RANK = 1 ]; then exit 3; fi; exec sleep 60"}),
            3);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(30));
}

TEST(LaunchLocal, BadArgumentsAreRejected) {
  EXPECT_THROW(launch_local(0, {"/bin/true"}), InvalidArgument);
  EXPECT_THROW(launch_local(2, {}), InvalidArgument);
  // A program that cannot be run: exit 127, as a shell says.
  EXPECT_EQ(launch_local(1, {"/nonexistent/program"}), 127);
}

TEST(LaunchLocal, FreeLocalPortIsAPort) {
  const int port = free_local_port();
  EXPECT_GT(port, 0);
  EXPECT_LT(port, 65536);
}

}  // namespace
}  // namespace rudder::core
