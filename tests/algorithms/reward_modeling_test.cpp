#include "algorithms/reward_modeling.h"

#include <iostream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "data/synthetic.h"
#include "tests/algorithms/reward_training_support.h"
#include "tests/support/tensor_testing.h"
#include "tests/support/test_support.h"

namespace rudder::algorithms {
namespace {

class RewardModelingTest : public testing::SeededTest {};

RankedRows synthetic_ranked(const data::Tokenizer& tok, size_t n) {
  const data::SyntheticTasks tasks({"mixed"}, 7);
  data::SplitMix64 rng(13);
  RankedRows out;
  for (const auto& ex : tasks.examples(n, 0)) {
    const auto l = data::SyntheticTasks::ranked(ex, 4, rng);
    std::vector<data::TokenizedPair> rows;
    for (const auto& r : l.responses) {
      rows.push_back(data::tokenize_pair(tok, l.prompt, r, testing::reward_tokenizer_config(),
                                         testing::reward_data_config()));
    }
    out.lists.push_back(std::move(rows));
    out.ranks.push_back(l.ranks);
  }
  return out;
}

// The scalar model on ranked lists of the synthetic mix: held-out pairwise accuracy >= 0.9.
TEST_F(RewardModelingTest, RankedListsTrainTheScalarModelToNinetyPercent) {
  std::shared_ptr<data::Tokenizer> tok = data::make_byte_tokenizer();
  auto net = std::make_shared<rewards::ScalarRewardNet>(testing::sft_tiny_model(*tok));
  RewardModelConfig config;
  config.set_kind("scalar");
  config.set_loss("ranked");
  PreferenceData held_out = testing::synthetic_preferences(*tok, 0, 300);
  RewardModeling rm(net, tok->pad_id(), held_out, config, synthetic_ranked(*tok, 2000));
  EXPECT_EQ(rm.num_train(), 2000u);
  testing::train_steps(rm, rm.num_train(), 300, 16, 1e-3);
  const auto m = rm.evaluate();
  std::cout << "[ ranked ] scalar RM on ranked lists (4 responses), held-out pairwise accuracy "
            << m.at("eval/accuracy") << "\n";
  EXPECT_GE(m.at("eval/accuracy"), 0.9);
  EXPECT_EQ(rm.eval_rewards().size(), 600u);  // normalization statistics as for pairs

  RewardModelConfig with_margin = config;
  with_margin.set_use_margin(true);
  EXPECT_THROW(RewardModeling(net, tok->pad_id(), held_out, with_margin, synthetic_ranked(*tok, 2)),
               core::InvalidArgument);
  EXPECT_THROW(RewardModeling(net, tok->pad_id(), held_out, config), core::InvalidArgument);
}

}  // namespace
}  // namespace rudder::algorithms
