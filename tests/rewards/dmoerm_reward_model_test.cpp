#include "rewards/dmoerm_reward_model.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "rewards/dmoerm_aggregate.h"
#include "tests/rewards/reward_test_support.h"
#include "tests/support/tensor_testing.h"
#include "tests/support/test_support.h"

namespace rudder::rewards {
namespace {

class DmoermRewardModelTest : public testing::SeededTest {};

std::shared_ptr<DmoermNet> tiny_net() {
  DmoermConfig config;
  config.set_expert_rank(4);
  config.set_expert_alpha(8);
  auto net =
      std::make_shared<DmoermNet>(std::make_shared<models::CausalLM>(testing::tiny_rm_spec()),
                                  DmoermLayout{{"a", "b"}, {"x", "y", "z"}}, config);
  torch::NoGradGuard no_grad;
  for (auto& p : net->parameters()) p.add_(torch::randn_like(p) * 0.05);  // adapters not zero
  return net;
}

TEST_F(DmoermRewardModelTest, RoutesScoresPerDimensionAndAggregates) {
  auto net = tiny_net();
  std::shared_ptr<data::Tokenizer> tok = data::make_byte_tokenizer();
  TokenizerConfig tc;
  const DataConfig dc = testing::rm_data_config();
  DmoermRewardModel rm(net, tok, tc, dc);
  EXPECT_EQ(rm.capabilities().dimensions, (std::vector<std::string>{"x", "y", "z"}));
  const std::vector<std::string> prompts = {"2+2=", "review, positive:", "reverse abc:"};
  const std::vector<std::string> responses = {"4", "great film, fun", "cba"};
  const auto routed = rm.route(prompts);
  const auto d = rm.score_detailed(prompts, responses, {false, true});
  ASSERT_EQ(d.size(), 3u);
  for (size_t i = 0; i < d.size(); ++i) {
    EXPECT_EQ(d[i].category, net->layout().categories[routed[i]]);
    EXPECT_EQ(d[i].dimension_scores.size(), 3u);
  }
  // The reward is the routed category's aggregation of its experts' states, row by row.
  const data::TokenizedPair pair = data::tokenize_pair(*tok, prompts[1], responses[1], tc, dc);
  const data::Batch one = data::collate({pair}, tok->pad_id());
  // The server's token count is the row's.
  EXPECT_EQ(rm.count_tokens(prompts[1], responses[1]),
            static_cast<int64_t>(pair.prompt.size() + pair.response.size()));
  torch::NoGradGuard no_grad;
  net->eval();
  std::vector<at::Tensor> hidden;
  for (size_t k = 0; k < 3; ++k) hidden.push_back(net->expert_hidden(routed[1], k, one));
  EXPECT_NEAR(d[1].reward, net->aggregate(routed[1], torch::stack(hidden, 1))[0].item<double>(),
              1e-5);
  EXPECT_NEAR(d[1].dimension_scores.at("y"),
              net->expert_scores(routed[1], 1, hidden[1])[0].item<double>(), 1e-5);
  // Experts differ: their adapters are distinct.
  EXPECT_GT((hidden[0] - hidden[1]).abs().max().item<double>(), 1e-6);
  EXPECT_THROW(rm.score_detailed(prompts, responses, {true, false}), core::InvalidArgument);
}

TEST_F(DmoermRewardModelTest, SaveLoadScoresIdentically) {
  auto net = tiny_net();
  std::shared_ptr<data::Tokenizer> tok = data::make_byte_tokenizer();
  TokenizerConfig tc;
  const DataConfig dc = testing::rm_data_config();
  DmoermRewardModel rm(net, tok, tc, dc);
  testing::TempDir dir;
  rm.save(dir.path());
  auto loaded = load_dmoerm_reward_model(dir.path(), tok, tc, dc);
  const std::vector<std::string> p = {"7+8=", "reverse abc:"}, r = {"15", "cba"};
  const auto a = rm.score_detailed(p, r, {false, true});
  const auto b = loaded->score_detailed(p, r, {false, true});
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(a[i].reward, b[i].reward, 1e-5);
    EXPECT_EQ(a[i].category, b[i].category);
    EXPECT_NEAR(a[i].dimension_scores.at("z"), b[i].dimension_scores.at("z"), 1e-5);
  }
  EXPECT_THROW(load_dmoerm_reward_model(dir.path() + "/missing", tok, tc, dc), core::NotFound);
}

}  // namespace
}  // namespace rudder::rewards
