#include "data/synthetic.h"

#include <map>

#include <gtest/gtest.h>

#include "core/error.h"

namespace rudder::data {
namespace {

TEST(Synthetic, ExamplesAreDeterministicAndMixCategories) {
  SyntheticTasks tasks({"mixed"}, 5);
  const auto a = tasks.examples(300, 0);
  const auto b = tasks.examples(300, 0);
  const auto eval = tasks.examples(300, 1);
  std::map<std::string, int> counts;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].prompt, b[i].prompt);
    ++counts[a[i].category];
  }
  EXPECT_EQ(counts.size(), 3u);
  for (const auto& [category, n] : counts) EXPECT_GT(n, 50) << category;
  int same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i].prompt == eval[i].prompt;
  EXPECT_LT(same, 100);
  EXPECT_THROW(SyntheticTasks({"poetry"}, 1), core::InvalidArgument);
}

TEST(Synthetic, ReviewsAreLabelledByTheirSentiment) {
  const SyntheticTasks tasks({"sentiment"}, 3);
  const auto reviews = tasks.reviews(400, 0);
  int desired = 0;
  for (const auto& r : reviews) {
    EXPECT_EQ(r.prompt, "review:");
    EXPECT_EQ(SyntheticTasks::is_positive(r.text), r.desired) << r.text;
    desired += r.desired;
  }
  EXPECT_GT(desired, 150);
  EXPECT_LT(desired, 250);
  EXPECT_EQ(tasks.reviews(400, 0)[7].text, reviews[7].text);
  EXPECT_FALSE(SyntheticTasks::is_positive("film, plot"));
}

TEST(Synthetic, AnswersScoreHighestAndPairsAreOrdered) {
  SyntheticTasks tasks({}, 9);
  SplitMix64 rng(1);
  for (const auto& ex : tasks.examples(200, 0)) {
    EXPECT_DOUBLE_EQ(SyntheticTasks::score(ex, ex.answer), 1.0) << ex.prompt << " -> " << ex.answer;
    const PreferencePair p = SyntheticTasks::preference(ex, rng);
    EXPECT_GT(SyntheticTasks::score(ex, p.chosen), SyntheticTasks::score(ex, p.rejected))
        << ex.prompt << " " << p.rejected;
    EXPECT_GT(p.margin, 0.0);
  }
}

TEST(Synthetic, ScorersGiveGradedCredit) {
  const TaskExample sum{"arithmetic", "20+22=", "42"};
  EXPECT_DOUBLE_EQ(SyntheticTasks::score(sum, " 42"), 1.0);
  EXPECT_GT(SyntheticTasks::score(sum, "41"), SyntheticTasks::score(sum, "60"));
  EXPECT_DOUBLE_EQ(SyntheticTasks::score(sum, "forty-two"), 0.0);
  const TaskExample review{"sentiment", "review, positive:", "great fun"};
  EXPECT_GT(SyntheticTasks::score(review, "great film"),
            SyntheticTasks::score(review, "dull film"));
  EXPECT_DOUBLE_EQ(SyntheticTasks::score(review, ""), 0.0);
  const TaskExample rev{"reverse", "reverse abc:", "cba"};
  EXPECT_DOUBLE_EQ(SyntheticTasks::score(rev, "cbx"), 2.0 / 3.0);
  EXPECT_LT(SyntheticTasks::score(rev, "cbaaaa"), 1.0);
}

TEST(Synthetic, DimensionPairsDifferOnTheirDimensionOnly) {
  const SyntheticTasks tasks({"mixed"}, 5);
  SplitMix64 rng(9);
  const auto& dims = SyntheticTasks::dimensions();
  ASSERT_EQ(dims, (std::vector<std::string>{"correctness", "format", "length"}));
  for (const auto& ex : tasks.examples(60, 0)) {
    EXPECT_EQ(SyntheticTasks::dimension_scores(ex, ex.answer), (std::vector<double>{1, 1, 1}));
    for (size_t d = 1; d < dims.size(); ++d) {
      const auto p = SyntheticTasks::dimension_preference(ex, d, rng);
      const auto w = SyntheticTasks::dimension_scores(ex, p.chosen);
      const auto l = SyntheticTasks::dimension_scores(ex, p.rejected);
      for (size_t k = 0; k < dims.size(); ++k) {
        if (k == d)
          EXPECT_GT(w[k], l[k]) << dims[k] << " of '" << p.rejected << "'";
        else
          EXPECT_EQ(w[k], l[k]) << dims[k] << " of '" << p.rejected << "' (pair for " << dims[d]
                                << ")";
      }
    }
    EXPECT_GT(SyntheticTasks::dimension_preference(ex, 0, rng).margin, 0.0);
  }
  EXPECT_THROW(SyntheticTasks::dimension_preference(tasks.examples(1, 0)[0], 3, rng),
               core::InvalidArgument);
}

TEST(Synthetic, RankedListsRankByGroundTruth) {
  const SyntheticTasks tasks({"mixed"}, 5);
  SplitMix64 rng(4);
  for (const auto& ex : tasks.examples(30, 0)) {
    const auto l = SyntheticTasks::ranked(ex, 4, rng);
    ASSERT_EQ(l.responses.size(), 4u);
    EXPECT_EQ(l.responses[0], ex.answer);
    EXPECT_EQ(l.ranks[0], 0);
    for (size_t i = 0; i < 4; ++i) {
      for (size_t j = 0; j < 4; ++j) {
        const double si = SyntheticTasks::score(ex, l.responses[i]);
        const double sj = SyntheticTasks::score(ex, l.responses[j]);
        EXPECT_EQ(l.ranks[i]<l.ranks[j], si> sj);
      }
    }
  }
  EXPECT_THROW(SyntheticTasks::ranked(tasks.examples(1, 0)[0], 1, rng), core::InvalidArgument);
}

}  // namespace
}  // namespace rudder::data
