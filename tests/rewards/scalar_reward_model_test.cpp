#include "rewards/scalar_reward_model.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "rewards/bt_loss.h"
#include "tests/rewards/reward_test_support.h"
#include "tests/support/tensor_testing.h"
#include "tests/support/test_support.h"

namespace rudder::rewards {
namespace {

class ScalarRewardModelTest : public testing::SeededTest {};

TEST_F(ScalarRewardModelTest, NormalizationUsesUnbiasedStd) {
  const auto n = normalization_of({1, 2, 3, 4}, true);  // ALGORITHMS.md T1.2
  EXPECT_DOUBLE_EQ(n.mean, 2.5);
  EXPECT_NEAR(n.std, 1.290994, 1e-6);
  EXPECT_NEAR((4 - n.mean) / n.std, 1.161895, 1e-6);
}

TEST_F(ScalarRewardModelTest, SaveLoadScoresIdenticallyAndNormalizes) {
  auto net = std::make_shared<ScalarRewardNet>(
      std::make_shared<models::CausalLM>(testing::tiny_rm_spec()));
  std::shared_ptr<data::Tokenizer> tok = data::make_byte_tokenizer();
  TokenizerConfig tc;
  tc.set_add_eos(true);
  DataConfig dc;
  dc.set_max_length(64);
  dc.set_max_prompt_length(32);
  ScalarRewardModel rm(net, tok, tc, dc, {true, 0.5, 2.0});
  const std::vector<std::string> prompts = {"2+2=", "review, positive:", "x"};
  const std::vector<std::string> responses = {"4", "great film, fun",
                                              "a much longer response than the others"};
  const auto scores = rm.score(prompts, responses);
  ASSERT_EQ(scores.size(), 3u);
  testing::TempDir dir;
  rm.save(dir.path());
  auto loaded = load_scalar_reward_model(dir.path(), tok, tc, dc);
  EXPECT_EQ(loaded->score(prompts, responses), scores);
  EXPECT_TRUE(loaded->normalization().enabled);
  EXPECT_DOUBLE_EQ(loaded->normalization().std, 2.0);
  // Normalization is (r - mean) / std of the raw reward.
  ScalarRewardModel raw(net, tok, tc, dc, {false, 0, 1});
  EXPECT_NEAR(scores[0], (raw.score(prompts, responses)[0] - 0.5) / 2.0, 1e-9);
  // The byte tokenizer's padding and EOS texts, which /get_reward cuts from a query's ends.
  EXPECT_EQ(rm.pad_and_eos_texts(), (std::vector<std::string>{"<|pad|>", "<|eos|>"}));
  EXPECT_THROW(rm.score({"a"}, {}), core::InvalidArgument);
  EXPECT_THROW(load_scalar_reward_model(dir.path() + "/missing", tok, tc, dc), core::NotFound);
}

// On the causal attention path that score() takes for its right-padded batches
// (models::batch_input), the reward, read at each row's last real token, is the one the full
// padding mask gives.
TEST_F(ScalarRewardModelTest, RewardsOfTheCausalPathMatchTheFullMask) {
  ScalarRewardNet net(std::make_shared<models::CausalLM>(testing::tiny_rm_spec()));
  net.eval();
  torch::NoGradGuard no_grad;
  const std::vector<int64_t> lengths = {7, 2, 5, 1};
  const int64_t B = static_cast<int64_t>(lengths.size()), T = 7;
  at::Tensor mask = torch::zeros({B, T}, torch::kLong);
  for (int64_t i = 0; i < B; ++i) mask[i].narrow(0, 0, lengths[i]).fill_(1);
  const at::Tensor ids = torch::randint(1, 200, {B, T}).masked_fill(mask == 0, 0);
  const at::Tensor pos = torch::arange(T).repeat({B, 1}).masked_fill(mask == 0, 0);
  const models::ForwardInput causal = models::batch_input(ids, mask, pos, torch::kCPU);
  ASSERT_TRUE(causal.right_padded);
  testing::expect_tensor_near(net.forward(causal), net.forward({ids, mask, pos}), 1e-5,
                              "rewards with the causal mask alone");
}

TEST_F(ScalarRewardModelTest, BradleyTerryTrainingSeparatesPairs) {
  auto net = std::make_shared<ScalarRewardNet>(
      std::make_shared<models::CausalLM>(testing::tiny_rm_spec()));
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(3e-3));
  // chosen rows end in 'a', rejected in 'b': trivially separable.
  const at::Tensor chosen = torch::tensor({{1, 2, 97}, {3, 4, 97}}),
                   rejected = torch::tensor({{1, 2, 98}, {3, 4, 98}});
  const at::Tensor mask = torch::ones({2, 3}, torch::kLong), pos = torch::arange(3).repeat({2, 1});
  double accuracy = 0;
  for (int step = 0; step < 30; ++step) {
    opt.zero_grad();
    const auto out =
        bt_loss(net->forward({chosen, mask, pos}), net->forward({rejected, mask, pos}));
    out.loss.backward();
    opt.step();
    accuracy = out.accuracy;
  }
  EXPECT_EQ(accuracy, 1.0);
}

}  // namespace
}  // namespace rudder::rewards
