#include "rewards/genarm_reward_model.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "models/logprobs.h"
#include "tests/rewards/reward_test_support.h"
#include "tests/support/tensor_testing.h"
#include "tests/support/test_support.h"

namespace rudder::rewards {
namespace {

class GenArmRewardModelTest : public testing::SeededTest {};

TEST_F(GenArmRewardModelTest, RewardIsBetaTimesSummedResponseLogprobPerToken) {
  auto lm = std::make_shared<models::CausalLM>(testing::tiny_rm_spec());
  std::shared_ptr<data::Tokenizer> tok = data::make_byte_tokenizer();
  TokenizerConfig tc;
  tc.set_add_eos(true);
  const DataConfig dc = testing::rm_data_config();
  GenArmRewardModel rm(lm, tok, tc, dc, 0.5);
  EXPECT_TRUE(rm.capabilities().token_rewards);
  const std::vector<std::string> prompts = {"2+2=", "reverse abc:"};
  const std::vector<std::string> responses = {"4", "cba"};
  const auto detail = rm.score_detailed(prompts, responses, {true, false});
  ASSERT_EQ(detail.size(), 2u);
  // One reward per response token (EOS included), summing to the reward.
  EXPECT_EQ(detail[0].token_rewards.size(), 2u);
  EXPECT_EQ(detail[1].token_rewards.size(), 4u);
  for (const auto& d : detail) {
    double sum = 0;
    for (double t : d.token_rewards) sum += t;
    EXPECT_NEAR(sum, d.reward, 1e-6);
  }
  // Against an independent computation: beta_r x sequence log-prob of the one row.
  const auto pair = data::tokenize_pair(*tok, prompts[1], responses[1], tc, dc);
  const data::Batch b = data::collate({pair}, tok->pad_id());
  torch::NoGradGuard no_grad;
  const at::Tensor logits = lm->forward({b.input_ids, b.attention_mask, b.position_ids});
  const double want =
      0.5 * models::sequence_logprobs(logits, b.input_ids, b.loss_mask)[0].item<double>();
  EXPECT_NEAR(detail[1].reward, want, 1e-5);
  EXPECT_EQ(rm.score(prompts, responses)[1], detail[1].reward);
  // The server's token count is the row's: prompt, response and EOS.
  EXPECT_EQ(rm.count_tokens(prompts[1], responses[1]),
            static_cast<int64_t>(pair.prompt.size() + pair.response.size()));
  EXPECT_EQ(rm.pad_and_eos_texts(), (std::vector<std::string>{"<|pad|>", "<|eos|>"}));
  // A response with an empty prompt has a reward for every token too, its first (which nothing
  // predicts) 0.
  const auto bare = rm.score_detailed({""}, {"abc"}, {true, false});
  ASSERT_EQ(bare[0].token_rewards.size(), 4u);
  EXPECT_EQ(bare[0].token_rewards[0], 0.0);
  EXPECT_THROW(rm.score_detailed(prompts, responses, {false, true}), core::InvalidArgument);
  EXPECT_THROW(GenArmRewardModel(lm, tok, tc, dc, 0.0), core::InvalidArgument);
}

TEST_F(GenArmRewardModelTest, SavesALoadableCausalLmWithBetaR) {
  auto lm = std::make_shared<models::CausalLM>(testing::tiny_rm_spec());
  std::shared_ptr<data::Tokenizer> tok = data::make_byte_tokenizer();
  TokenizerConfig tc;
  const DataConfig dc = testing::rm_data_config();
  GenArmRewardModel rm(lm, tok, tc, dc, 0.05);
  testing::TempDir dir;
  rm.save(dir.path());
  auto loaded = load_genarm_reward_model(dir.path(), tok, tc, dc);
  EXPECT_DOUBLE_EQ(loaded->beta_r(), 0.05);
  const std::vector<std::string> p = {"7+8="}, r = {"15"};
  EXPECT_NEAR(loaded->score(p, r)[0], rm.score(p, r)[0], 1e-6);
  EXPECT_THROW(load_genarm_reward_model(dir.path() + "/missing", tok, tc, dc), core::NotFound);
}

}  // namespace
}  // namespace rudder::rewards
