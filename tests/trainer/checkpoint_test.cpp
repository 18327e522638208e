#include "trainer/checkpoint.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "tests/support/tensor_testing.h"
#include "tests/support/test_support.h"

namespace rudder::trainer {
namespace {

namespace fs = std::filesystem;

class CheckpointTest : public testing::SeededTest {};

CheckpointState state_at(uint64_t step) {
  CheckpointState s;
  s.step = step;
  s.sampler = {step / 5, step % 5};
  s.model = {{"w", torch::randn({4, 4})}, {"b", torch::randn({4})}};
  s.optimizer = {{"exp_avg.w", torch::randn({4, 4})},
                 {"steps", torch::tensor({static_cast<int64_t>(step)})}};
  s.rng_cpu = at::detail::getDefaultCPUGenerator().get_state();
  s.config.set_name("ckpt-test");
  return s;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const core::Error& e) {
    return e.what();
  }
  return "";
}

TEST_F(CheckpointTest, RoundTripIsExactAndKeepsTheNewest) {
  testing::TempDir dir;
  CheckpointState last;
  for (uint64_t step = 1; step <= 4; ++step) {
    last = state_at(step);
    save_checkpoint(dir.path(), last, 2);
  }
  EXPECT_FALSE(fs::exists(dir.path() + "/step-00000002"));
  EXPECT_TRUE(fs::exists(dir.path() + "/step-00000003"));
  EXPECT_EQ(find_resume_checkpoint(dir.path()), dir.path() + "/step-00000004");
  const CheckpointState back = load_checkpoint(dir.path() + "/step-00000004");
  EXPECT_EQ(back.step, 4u);
  EXPECT_EQ(back.sampler.epoch, 0u);
  EXPECT_EQ(back.sampler.index, 4u);
  EXPECT_EQ(back.config.name(), "ckpt-test");
  EXPECT_TRUE(torch::equal(back.model.at("w"), last.model.at("w")));
  EXPECT_TRUE(torch::equal(back.optimizer.at("exp_avg.w"), last.optimizer.at("exp_avg.w")));
  EXPECT_TRUE(torch::equal(back.rng_cpu, last.rng_cpu));
}

TEST_F(CheckpointTest, TruncatedOrAlteredFilesAreRefusedAndAutoFallsBack) {
  for (const bool truncate : {true, false}) {
    testing::TempDir dir;
    for (uint64_t step = 1; step <= 3; ++step) save_checkpoint(dir.path(), state_at(step), 0);
    const std::string victim = dir.path() + "/step-00000003/model.safetensors";
    if (truncate) {
      fs::resize_file(victim, fs::file_size(victim) - 10);
    } else {
      std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(-3, std::ios::end);
      f.put('\x7f');
    }
    const std::string msg = error_of([&] { load_checkpoint(dir.path() + "/step-00000003"); });
    EXPECT_NE(msg.find("step-00000003/model.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find(truncate ? "truncated" : "altered"), std::string::npos) << msg;
    EXPECT_EQ(find_resume_checkpoint(dir.path()), dir.path() + "/step-00000002");
  }
}

TEST_F(CheckpointTest, IncompleteOrUnpointedCheckpointsAreNeverSilentlyIgnored) {
  testing::TempDir dir;
  EXPECT_EQ(find_resume_checkpoint(dir.path()), "");  // nothing there: a fresh start
  save_checkpoint(dir.path(), state_at(1), 0);
  // An interrupted save leaves a temporary directory: removed, never resumed from.
  fs::create_directories(dir.path() + "/.tmp-step-00000002-123");
  EXPECT_EQ(find_resume_checkpoint(dir.path()), dir.path() + "/step-00000001");
  EXPECT_FALSE(fs::exists(dir.path() + "/.tmp-step-00000002-123"));
  // A step directory without a manifest is incomplete.
  fs::create_directories(dir.path() + "/step-00000005");
  EXPECT_NE(
      error_of([&] { load_checkpoint(dir.path() + "/step-00000005"); }).find("no manifest.json"),
      std::string::npos);
  // Checkpoints without a valid `latest` are an error, not a fresh start.
  fs::remove(dir.path() + "/latest");
  EXPECT_NE(error_of([&] { find_resume_checkpoint(dir.path()); }).find("no 'latest' pointer"),
            std::string::npos);
  std::ofstream(dir.path() + "/latest") << "step-00000009\n";
  EXPECT_NE(error_of([&] { find_resume_checkpoint(dir.path()); }).find("not a checkpoint"),
            std::string::npos);
}

}  // namespace
}  // namespace rudder::trainer
