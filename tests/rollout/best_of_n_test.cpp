// best_of_n_decode: every sample is scored with the reward model on its prompt's text, and the
// best (or worst) one is chosen, first on ties.
#include "rollout/best_of_n.h"

#include <algorithm>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "rewards/reward_model.h"
#include "rollout/local_engine.h"
#include "tests/support/tensor_testing.h"
#include "tests/support/tiny_models.h"

namespace rudder::rollout {
namespace {

// Rewards the sum of the response's bytes; records what it was asked.
class ByteSumReward : public rewards::RewardModel {
 public:
  std::vector<double> score(const std::vector<std::string>& prompts,
                            const std::vector<std::string>& responses) override {
    asked_prompts = prompts;
    std::vector<double> out;
    for (const auto& r : responses) {
      double sum = 0;
      for (const unsigned char c : r) sum += c;
      out.push_back(sum);
    }
    return out;
  }
  std::string version() const override { return "byte-sum"; }
  std::vector<std::string> asked_prompts;
};

TEST(BestOfN, ChoosesTheBestAndTheWorstSampleByReward) {
  torch::manual_seed(11);
  models::CausalLM model(testing::tiny_llama(32, 1, 4, 64));
  std::shared_ptr<const data::Tokenizer> tokenizer = data::make_byte_tokenizer();
  LocalEngineOptions o;
  o.max_batch = 4;
  o.tokenizer = tokenizer;
  LocalEngine engine(model, o);
  std::vector<GenerateInput> requests(2);
  requests[0].prompt_text = "Q: one";
  requests[1].prompt = tokenizer->encode("Q: two");
  for (auto& r : requests) {
    r.n = 6;
    r.sampling.set_max_new_tokens(4);
    r.sampling.set_temperature(1.0);
    r.sampling.set_top_p(1.0);
    r.sampling.set_repetition_penalty(1.0);
    r.sampling.set_seed(5);
  }
  ByteSumReward reward;
  for (const bool worst : {false, true}) {
    const auto results = best_of_n_decode(engine, reward, requests, *tokenizer, worst);
    ASSERT_EQ(results.size(), 2u);
    EXPECT_EQ(reward.asked_prompts.front(), "Q: one");
    EXPECT_EQ(reward.asked_prompts.back(), "Q: two");
    for (const auto& r : results) {
      ASSERT_EQ(r.samples.size(), 6u);
      ASSERT_EQ(r.scores.size(), 6u);
      for (size_t i = 0; i < 6; ++i) {
        EXPECT_EQ(r.scores[i], reward.score({""}, {r.samples[i].text})[0]);
      }
      const auto it = worst ? std::min_element(r.scores.begin(), r.scores.end())
                            : std::max_element(r.scores.begin(), r.scores.end());
      EXPECT_EQ(r.chosen, static_cast<size_t>(it - r.scores.begin()));
      EXPECT_NE(*std::min_element(r.scores.begin(), r.scores.end()),
                *std::max_element(r.scores.begin(), r.scores.end()));
    }
  }
}

}  // namespace
}  // namespace rudder::rollout
