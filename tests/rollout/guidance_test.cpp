#include "rollout/guidance.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "tests/support/tensor_testing.h"

namespace rudder::rollout {
namespace {

using testing::expect_tensor_near;

constexpr double kTol = 1e-10;  // every test below computes in double

class GuidanceTest : public testing::SeededTest {};

// The message of the InvalidArgument that `f` throws, or a note that it threw none.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const core::InvalidArgument& e) {
    return e.what();
  }
  return "<no InvalidArgument thrown>";
}

#define EXPECT_MESSAGE_HAS(message, part) \
  EXPECT_NE((message).find(part), std::string::npos) << "message: " << (message)

at::Tensor randn(std::vector<int64_t> shape) { return torch::randn(shape, torch::kDouble) * 3; }

// --- GenARM ---

TEST_F(GuidanceTest, GenarmZeroWeightRecoversTheBase) {
  // alpha = beta_r / beta -> 0 as beta -> infinity: the decoder becomes the base model.
  const at::Tensor base = randn({4, 11});                                // [B, V]
  at::Tensor arms = randn({1, 4, 11});                                   // [K, B, V]
  arms.index_put_({0, 0, 3}, -std::numeric_limits<double>::infinity());  // a masked ARM token
  const at::Tensor base_logp = torch::log_softmax(base, -1);
  expect_tensor_near(genarm_combine(base, arms, {{0.0}, 1.0}), base_logp, kTol, "alpha 0");
  expect_tensor_near(genarm_combine(base, arms.masked_fill(arms.isinf(), 0), {{1e-9}, 1.0}),
                     base_logp, 1e-7, "alpha 1e-9");
  // With alpha = 1 the ARM does move the distribution, so the checks above are not vacuous.
  EXPECT_GT(
      testing::max_abs_diff(genarm_combine(base, arms.masked_fill(arms.isinf(), 0)), base_logp),
      1e-3);
}

TEST_F(GuidanceTest, GenarmIsNormalizedAndTemperatureActsOnTheCombinedScores) {
  const at::Tensor base = randn({3, 9}), arms = randn({2, 3, 9});
  const GenarmCombineOptions options{{0.4, 1.7}, 0.6};
  const at::Tensor got = genarm_combine(base, arms, options);  // [B, V]
  expect_tensor_near(got.logsumexp(-1), torch::zeros({3}, torch::kDouble), kTol, "logsumexp");
  const at::Tensor mixed = torch::log_softmax(base, -1) + 0.4 * torch::log_softmax(arms[0], -1) +
                           1.7 * torch::log_softmax(arms[1], -1);
  expect_tensor_near(got, torch::log_softmax(mixed / 0.6, -1), kTol, "combined / T");
  // ALGORITHMS.md T7.2: the model-arithmetic route ((log p_b + a log p_r) / (1 + a), renormalized,
  // then temperature 1 / (1 + a)) gives the same distribution as alpha = a at T = 1.
  const double a = 2.0;
  const at::Tensor one_arm = arms.slice(0, 0, 1);
  const at::Tensor averaged = torch::log_softmax(
      (torch::log_softmax(base, -1) + a * torch::log_softmax(one_arm[0], -1)) / (1 + a), -1);
  expect_tensor_near(genarm_combine(base, one_arm, {{a}, 1.0}),
                     torch::log_softmax(averaged * (1 + a), -1), kTol, "T7.2");
}

TEST_F(GuidanceTest, GenarmBatchRowsMatchSingleRows) {
  const at::Tensor base = randn({3, 7}), arms = randn({2, 3, 7});
  const GenarmCombineOptions options{{0.8, 0.3}, 1.3};
  const at::Tensor batched = genarm_combine(base, arms, options);
  for (int64_t b = 0; b < 3; ++b) {
    expect_tensor_near(batched[b], genarm_combine(base[b], arms.select(1, b), options), kTol,
                       "row " + std::to_string(b));
  }
}

TEST_F(GuidanceTest, GenarmRefusesBadShapesAndOptions) {
  const at::Tensor base = randn({5});
  EXPECT_MESSAGE_HAS(error_of([&] { genarm_combine(base, randn({5})); }),
                     "arm_logits must be [K, [5]]");
  EXPECT_MESSAGE_HAS(error_of([&] { genarm_combine(base, randn({2, 6})); }), "got [2, 6]");
  EXPECT_MESSAGE_HAS(error_of([&] {
                       genarm_combine(base, randn({2, 5}), {{1.0}, 1.0});
                     }),
                     "1 weights for 2 ARMs");
  EXPECT_MESSAGE_HAS(error_of([&] {
                       genarm_combine(base, randn({1, 5}), {{}, 0.0});
                     }),
                     "temperature must be finite and > 0, got 0");
  EXPECT_MESSAGE_HAS(error_of([&] {
                       genarm_combine(torch::zeros({5}, torch::kLong), randn({1, 5}));
                     }),
                     "base_logits must be a floating-point tensor");
}

// --- GeDi posterior ---

TEST_F(GuidanceTest, GediPosteriorSumsToOneOverTheTwoClasses) {
  const at::Tensor logp_c = torch::log_softmax(randn({3, 8}), -1);
  const at::Tensor logp_anti = torch::log_softmax(randn({3, 8}), -1);
  const at::Tensor hist_c = -torch::rand({3}, torch::kDouble) * 20;
  const at::Tensor hist_anti = -torch::rand({3}, torch::kDouble) * 20;
  const at::Tensor count = torch::tensor({2, 5, 9}, torch::kLong);
  const at::Tensor p_c =
      gedi_posterior(logp_c, logp_anti, hist_c, hist_anti, count, {1.7, 0.3, -0.2, 2.0});
  // The anti class's posterior: the same formula with the codes (and their biases) swapped.
  const at::Tensor p_anti =
      gedi_posterior(logp_anti, logp_c, hist_anti, hist_c, count, {1.7, -0.2, 2.3, 0.0});
  expect_tensor_near(p_c + p_anti, torch::ones({3, 8}, torch::kDouble), kTol, "P(c) + P(c-bar)");
  EXPECT_GT((p_c - 0.5).abs().max().item<double>(), 0.05);  // not trivially 0.5 everywhere
}

TEST_F(GuidanceTest, GediPosteriorLengthNormalizationAndClassBias) {
  // ALGORITHMS.md T8.1: with no history and one scored token there is nothing to normalize, and
  // P(c|v) = p_c / (p_c + p_anti).
  const at::Tensor logp_c = torch::log(torch::tensor({0.6, 0.3, 0.1}, torch::kDouble));
  const at::Tensor logp_anti = torch::log(torch::tensor({0.2, 0.3, 0.5}, torch::kDouble));
  const at::Tensor zero = torch::scalar_tensor(0.0, torch::kDouble);
  const at::Tensor one = torch::scalar_tensor(1, torch::kLong);
  expect_tensor_near(gedi_posterior(logp_c, logp_anti, zero, zero, one),
                     torch::tensor({0.75, 0.5, 1.0 / 6.0}, torch::kDouble), kTol, "t = 1");
  // Equal likelihoods under both codes leave only the class bias: sigmoid(class_bias).
  const at::Tensor same = gedi_posterior(logp_c, logp_c, zero, zero, one, {3.0, 0.0, 0.0, 2.0});
  expect_tensor_near(same, torch::full({3}, 1.0 / (1.0 + std::exp(-2.0)), torch::kDouble), kTol,
                     "class bias only");
}

TEST_F(GuidanceTest, GediPosteriorRowsKeepTheirOwnLength) {
  const at::Tensor logp_c = torch::log_softmax(randn({2, 6}), -1);
  const at::Tensor logp_anti = torch::log_softmax(randn({2, 6}), -1);
  const at::Tensor hist_c = torch::tensor({-3.0, -12.0}, torch::kDouble);
  const at::Tensor hist_anti = torch::tensor({-4.0, -10.0}, torch::kDouble);
  const at::Tensor count = torch::tensor({2.0, 7.0}, torch::kDouble);
  const GediPosteriorOptions options{2.5, 0.0, 0.0, 0.0};
  const at::Tensor batched = gedi_posterior(logp_c, logp_anti, hist_c, hist_anti, count, options);
  for (int64_t b = 0; b < 2; ++b) {
    expect_tensor_near(
        batched[b],
        gedi_posterior(logp_c[b], logp_anti[b], hist_c[b], hist_anti[b], count[b], options), kTol,
        "row " + std::to_string(b));
  }
}

TEST_F(GuidanceTest, GediPosteriorRefusesBadShapesAndValues) {
  const at::Tensor logp = torch::log_softmax(randn({2, 4}), -1);
  const at::Tensor hist = torch::zeros({2}, torch::kDouble);
  const at::Tensor count = torch::full({2}, 3.0, torch::kDouble);
  EXPECT_MESSAGE_HAS(error_of([&] { gedi_posterior(logp, logp, hist[0], hist, count); }),
                     "history_desired must have one value per row, shape [2]");
  EXPECT_MESSAGE_HAS(error_of([&] { gedi_posterior(logp, logp.t(), hist, hist, count); }),
                     "got [2, 4] and [4, 2]");
  EXPECT_MESSAGE_HAS(error_of([&] { gedi_posterior(logp, logp, hist, hist, count * 0); }),
                     "must be >= 1, got 0");
  EXPECT_MESSAGE_HAS(error_of([&] {
                       gedi_posterior(logp, logp, hist, hist, count, {0.0, 0.0, 0.0, 0.0});
                     }),
                     "logit_scale must be finite and > 0, got 0");
}

// --- GeDi combination and filtering ---

at::Tensor random_class_prob(std::vector<int64_t> shape) {
  return torch::rand(shape, torch::kDouble) * 0.98 + 0.01;
}

TEST_F(GuidanceTest, GediCombineIsNormalizedAndKeepsWhatTheHeuristicPromises) {
  const at::Tensor lm_logp = torch::log_softmax(randn({4, 16}), -1);
  const at::Tensor class_prob = random_class_prob({4, 16});
  const GediCombineOptions options{3.0, 0.6, 0.7};
  const GediCombineOutput out = gedi_combine(lm_logp, class_prob, options);
  const at::Tensor ones = torch::ones({4}, torch::kDouble);
  expect_tensor_near(out.weighted_probs.sum(-1), ones, kTol, "sum p_w");
  expect_tensor_near(out.probs.sum(-1), ones, kTol, "sum probs");
  const at::Tensor kept = out.removed.logical_not();
  // Every token with class probability >= target_p is kept, removed ones get no mass, and the
  // kept set holds at least 1 - filter_p of the p_w mass.
  ASSERT_GT(out.removed.sum().item<int64_t>(), 0);  // the filter did act on this input
  EXPECT_TRUE(kept.masked_select(class_prob >= 0.7).all().item<bool>());
  EXPECT_LE(out.probs.masked_select(out.removed).max().item<double>(), 1e-300);
  const at::Tensor kept_mass = (out.weighted_probs * kept.to(torch::kDouble)).sum(-1);
  EXPECT_GE(kept_mass.min().item<double>(), 1 - 0.6 - kTol);
  // Kept tokens keep their relative p_w.
  expect_tensor_near(out.probs,
                     out.weighted_probs * kept.to(torch::kDouble) / kept_mass.unsqueeze(-1), kTol,
                     "renormalized p_w");
}

TEST_F(GuidanceTest, GediCombineWithoutGuidanceLeavesTheLanguageModel) {
  const at::Tensor lm_logits = randn({2, 10});  // raw logits are log-softmaxed first
  const GediCombineOutput out =
      gedi_combine(lm_logits, random_class_prob({2, 10}), {0.0, 0.0, 1.0});
  expect_tensor_near(out.probs, torch::softmax(lm_logits, -1), kTol, "omega 0, filter_p 0");
  EXPECT_FALSE(out.removed.any().item<bool>());
}

TEST_F(GuidanceTest, GediCombineZeroClassProbabilityGetsNoMassAndNoNan) {
  const at::Tensor lm_logp = torch::log(torch::tensor({0.2, 0.5, 0.3}, torch::kDouble));
  const at::Tensor class_prob = torch::tensor({0.0, 0.4, 0.9}, torch::kDouble);
  const GediCombineOutput out = gedi_combine(lm_logp, class_prob, {2.0, 0.0, 1.0});
  EXPECT_FALSE(out.probs.isnan().any().item<bool>());
  EXPECT_EQ(out.weighted_probs[0].item<double>(), 0.0);
  const double w1 = 0.5 * 0.4 * 0.4, w2 = 0.3 * 0.9 * 0.9;
  expect_tensor_near(
      out.probs, torch::tensor({0.0, w1 / (w1 + w2), w2 / (w1 + w2)}, torch::kDouble), kTol, "p_w");
}

TEST_F(GuidanceTest, GediCombineRefusesBadShapesAndOptions) {
  const at::Tensor lm_logp = torch::log_softmax(randn({3}), -1);
  const at::Tensor class_prob = random_class_prob({3});
  EXPECT_MESSAGE_HAS(error_of([&] { gedi_combine(lm_logp, random_class_prob({4})); }),
                     "got [3] and [4]");
  EXPECT_MESSAGE_HAS(error_of([&] { gedi_combine(lm_logp, class_prob + 1); }),
                     "class_prob must lie in [0, 1]");
  EXPECT_MESSAGE_HAS(error_of([&] {
                       gedi_combine(lm_logp, class_prob, {30.0, 1.5, 0.8});
                     }),
                     "filter_p must be in [0, 1], got 1.5");
  EXPECT_MESSAGE_HAS(error_of([&] {
                       gedi_combine(lm_logp, class_prob, {-1.0, 0.8, 0.8});
                     }),
                     "omega must be finite and >= 0, got -1");
  EXPECT_MESSAGE_HAS(error_of([&] {
                       gedi_combine(torch::zeros({0}, torch::kDouble),
                                    torch::zeros({0}, torch::kDouble));
                     }),
                     "non-empty vocabulary");
}

}  // namespace
}  // namespace rudder::rollout
