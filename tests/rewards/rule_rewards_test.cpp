#include "rewards/rule_rewards.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "data/synthetic.h"
#include "rewards/task_reward.h"

namespace rudder::rewards {
namespace {

TEST(RuleRewards, ExactMatchRegexAndLengthPenalty) {
  ExactMatchReward exact(std::unordered_map<std::string, std::string>{{"7+8=", "15"}});
  EXPECT_EQ(exact.score({"7+8=", "7+8=", "7+8="}, {" 15 ", "16", "15!"}),
            (std::vector<double>{1, 0, 0}));
  EXPECT_THROW(exact.score({"1+1="}, {"2"}), core::InvalidArgument);
  RegexReward digits("^ ?[0-9]+$");
  EXPECT_EQ(digits.score({"a", "b"}, {"42", "42!"}), (std::vector<double>{1, 0}));
  EXPECT_THROW(RegexReward("(unclosed"), core::InvalidArgument);
  LengthPenaltyReward length(3, 0.5);
  EXPECT_EQ(length.score({"a", "b"}, {"abc", "abcdef"}), (std::vector<double>{0, -1.5}));
  EXPECT_THROW(LengthPenaltyReward(3, -1), core::InvalidArgument);
  EXPECT_THROW(length.score({"a"}, {}), core::InvalidArgument);
}

TEST(RuleRewards, WeightedSumAddsWeightedTermsAndReportsEach) {
  const std::vector<data::TaskExample> tasks = {{"arithmetic", "7+8=", "15"}};
  WeightedSumReward sum({{"task", 1.0, std::make_shared<TaskReward>(tasks)},
                         {"exact", 2.0,
                          std::make_shared<ExactMatchReward>(
                              std::unordered_map<std::string, std::string>{{"7+8=", "15"}})},
                         {"length", 1.0, std::make_shared<LengthPenaltyReward>(2, 0.25)}});
  EXPECT_EQ(sum.capabilities().dimensions, (std::vector<std::string>{"task", "exact", "length"}));
  const auto d = sum.score_detailed({"7+8=", "7+8="}, {"15", "15 15 15"}, {false, true});
  EXPECT_DOUBLE_EQ(d[0].reward, 1.0 + 2.0);
  EXPECT_DOUBLE_EQ(d[1].reward, 1.0 + 0.0 - 0.25 * 6);
  EXPECT_DOUBLE_EQ(d[1].dimension_scores.at("exact"), 0.0);
  EXPECT_DOUBLE_EQ(d[1].dimension_scores.at("length"), -1.5);
  EXPECT_EQ(sum.score({"7+8="}, {"15"}), (std::vector<double>{3.0}));
  EXPECT_THROW(sum.score_detailed({"7+8="}, {"15"}, {true, false}), core::InvalidArgument);
  EXPECT_THROW(WeightedSumReward({}), core::InvalidArgument);
  EXPECT_THROW(WeightedSumReward({{"a", 1, nullptr}}), core::InvalidArgument);
}

}  // namespace
}  // namespace rudder::rewards
