#include "algorithms/arm_modeling.h"

#include <chrono>
#include <iostream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "rewards/genarm_reward_model.h"
#include "tests/algorithms/reward_training_support.h"
#include "tests/support/tensor_testing.h"
#include "tests/support/test_support.h"

namespace rudder::algorithms {
namespace {

class ArmModelingTest : public testing::SeededTest {};

// GenARM on the synthetic mix from a tiny SFT model: held-out pairwise accuracy >= 0.9.
TEST_F(ArmModelingTest, LearnsTheSyntheticMixToNinetyPercent) {
  const auto start = std::chrono::steady_clock::now();
  std::shared_ptr<data::Tokenizer> tok = data::make_byte_tokenizer();
  auto arm = testing::sft_tiny_model(*tok);
  GenArmConfig config;
  config.set_beta_r(0.5);
  ArmModeling algorithm(arm, tok->pad_id(), testing::synthetic_preferences(*tok, 2000, 300),
                        config);
  const double before = algorithm.evaluate().at("eval/accuracy");
  testing::train_steps(algorithm, algorithm.num_train(), 250, 32, 3e-3);
  const auto metrics = algorithm.evaluate();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[ genarm ] held-out accuracy " << before << " -> " << metrics.at("eval/accuracy")
            << " (arithmetic " << metrics.at("eval/accuracy/arithmetic") << ", sentiment "
            << metrics.at("eval/accuracy/sentiment") << ", reverse "
            << metrics.at("eval/accuracy/reverse") << ") in " << seconds << " s\n";
  EXPECT_GE(metrics.at("eval/accuracy"), 0.9);
  // The trained ARM scores strings the same way as the held-out rows.
  rewards::GenArmRewardModel rm(arm, tok, testing::reward_tokenizer_config(),
                                testing::reward_data_config(), config.beta_r());
  const auto r =
      rm.score({"review, positive:", "review, positive:"}, {"great film, fun", "awful plot, sad"});
  EXPECT_GT(r[0], r[1]);
}

}  // namespace
}  // namespace rudder::algorithms
