// The pure reward math: GenARM's ARM loss, CTRL calibration and DMoERM aggregation.
#include "rewards/arm_loss.h"

#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "rewards/calibration.h"
#include "rewards/dmoerm_aggregate.h"
#include "tests/support/tensor_testing.h"

namespace rudder::rewards {
namespace {

class RewardMathTest : public testing::SeededTest {};

at::Tensor vec(std::vector<double> v) { return torch::tensor(v, torch::kDouble); }

// Expects `f` to throw InvalidArgument whose message contains `needle`.
template <typename F>
void expect_invalid(F f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected InvalidArgument mentioning '" << needle << "'";
  } catch (const core::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

double arm(double chosen, double rejected, const ArmLossOptions& o) {
  return arm_loss(vec({chosen}), vec({rejected}), o).loss.item<double>();
}

// --- GenARM ARM loss -------------------------------------------------------------------------

TEST_F(RewardMathTest, ArmLossMatchesT73) {
  ArmLossOptions o;
  o.beta_r = 0.5;
  const auto out = arm_loss(vec({-10}), vec({-14}), o);
  EXPECT_NEAR(out.loss.item<double>(), 0.126928, 1e-6);  // -log sigmoid(2)
  EXPECT_DOUBLE_EQ(out.chosen_rewards.item<double>(), -5.0);
  EXPECT_DOUBLE_EQ(out.rejected_rewards.item<double>(), -7.0);
  EXPECT_DOUBLE_EQ(out.accuracy, 1.0);
}

TEST_F(RewardMathTest, ArmLossFallsAsChosenLogProbRises) {
  ArmLossOptions o;
  o.beta_r = 0.1;
  double previous = INFINITY;
  for (double chosen = -30; chosen <= 0; chosen += 2.5) {
    const double loss = arm(chosen, -12, o);
    EXPECT_LT(loss, previous) << "chosen logp " << chosen;
    previous = loss;
  }
  // The gradient says the same: push the chosen log-prob up and the rejected one down.
  const at::Tensor chosen = vec({-8, -20}).requires_grad_();
  const at::Tensor rejected = vec({-9, -3}).requires_grad_();
  arm_loss(chosen, rejected, o).loss.backward();
  EXPECT_TRUE((chosen.grad() < 0).all().item<bool>()) << chosen.grad();
  EXPECT_TRUE((rejected.grad() > 0).all().item<bool>()) << rejected.grad();
}

TEST_F(RewardMathTest, ArmMarginIsInRewardUnitsAndSmoothingFlipsTheLabel) {
  ArmLossOptions o;
  o.beta_r = 0.05;
  o.margin = 0.5;
  ArmLossOptions plain = o;
  plain.margin = 0;
  // beta_r * (delta - gamma / beta_r): the margin shifts delta by gamma / beta_r = 10.
  EXPECT_NEAR(arm(-5, -20, o), arm(-15, -20, plain), 1e-12);
  EXPECT_GT(arm(-5, -20, o), arm(-5, -20, plain));
  ArmLossOptions smooth;
  smooth.beta_r = 0.5;
  smooth.label_smoothing = 0.1;  // z = 2: 0.9 softplus(-2) + 0.1 softplus(2)
  EXPECT_NEAR(arm(-10, -14, smooth),
              0.9 * std::log1p(std::exp(-2.0)) + 0.1 * std::log1p(std::exp(2.0)), 1e-12);
}

TEST_F(RewardMathTest, ArmLossRefusesBadInput) {
  ArmLossOptions o;
  expect_invalid([&] { arm_loss(vec({1, 2}), vec({1}), o); }, "[2] and [1]");
  expect_invalid([&] { arm_loss(torch::zeros({2, 3}), torch::zeros({2, 3}), o); }, "[2, 3]");
  expect_invalid([&] { arm_loss(vec({}), vec({}), o); }, "B > 0");
  o.beta_r = 0;
  expect_invalid([&] { arm_loss(vec({1}), vec({0}), o); }, "beta_r must be > 0, got 0");
  o.beta_r = 0.1;
  o.label_smoothing = 0.5;
  expect_invalid([&] { arm_loss(vec({1}), vec({0}), o); }, "got 0.5");
}

// --- CTRL calibration ------------------------------------------------------------------------

TEST_F(RewardMathTest, CalibrationMatchesT51WithTiesAsHalf) {
  const at::Tensor ref = vec({0.1, 0.5, 0.5, 0.9}).repeat({4, 1});  // [4, 4]
  testing::expect_tensor_near(ctrl_calibrate(vec({0.5, 1.0, 0.0, 0.1}), ref),
                              vec({0.5, 1.0, 0.0, 0.125}), 1e-12, "calibrated");
  EXPECT_DOUBLE_EQ(
      ctrl_calibrate(vec({2}), torch::full({1, 5}, 2.0, torch::kDouble)).item<double>(), 0.5);
}

TEST_F(RewardMathTest, CalibrationIsMonotoneAndInUnitInterval) {
  const at::Tensor ref = torch::randn({1, 32}, torch::kDouble).round();   // ties on purpose
  const at::Tensor rewards = torch::linspace(-4, 4, 81, torch::kDouble);  // [81]
  const at::Tensor c = ctrl_calibrate(rewards, ref.expand({81, 32}));     // [81]
  EXPECT_GE(c.min().item<double>(), 0.0);
  EXPECT_LE(c.max().item<double>(), 1.0);
  EXPECT_DOUBLE_EQ(c[0].item<double>(), 0.0);
  EXPECT_DOUBLE_EQ(c[80].item<double>(), 1.0);
  EXPECT_TRUE((c.slice(0, 1) >= c.slice(0, 0, 80)).all().item<bool>()) << c;
}

TEST_F(RewardMathTest, CalibrationIgnoresRewardScaleAndAveragesHalfOnReference) {
  const at::Tensor ref = torch::randint(-5, 6, {3, 16}, torch::kDouble);  // [3, 16], with ties
  const at::Tensor reward = torch::randint(-6, 7, {3}, torch::kDouble);
  testing::expect_tensor_near(ctrl_calibrate(3 * reward + 1, 3 * ref + 1),
                              ctrl_calibrate(reward, ref), 0, "after an increasing map");
  // Scoring each reference sample against its own row averages exactly 1/2, ties included.
  const at::Tensor self = ctrl_calibrate(ref.reshape({-1}), ref.repeat_interleave(16, 0));
  testing::expect_tensor_near(self.reshape({3, 16}).mean(1), torch::full({3}, 0.5, torch::kDouble),
                              1e-12, "mean calibration of the reference samples");
}

TEST_F(RewardMathTest, CalibrationRefusesBadInput) {
  expect_invalid(
      [] {
        ctrl_calibrate(vec({1, 2}), torch::zeros({3, 4}, torch::kDouble));
      },
      "[2] and [3, 4]");
  expect_invalid([] { ctrl_calibrate(vec({1}), torch::zeros({1, 0}, torch::kDouble)); }, "K >= 1");
  expect_invalid(
      [] {
        ctrl_calibrate(torch::zeros({1}), torch::zeros({1, 2}, torch::kDouble));
      },
      "Float and Double");
  expect_invalid(
      [] {
        ctrl_calibrate(vec({NAN}), torch::zeros({1, 2}, torch::kDouble));
      },
      "1 non-finite in reward");
}

// --- DMoERM aggregation ----------------------------------------------------------------------

DmoermAggregatorWeights t62_weights() {
  DmoermAggregatorWeights w;
  w.w1 = torch::tensor({1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0}, torch::kDouble).reshape({2, 4});
  w.b1 = vec({0, 0});
  w.w2 = vec({1, 2});
  w.b2 = torch::tensor(0.5, torch::kDouble);
  w.prelu_weight = vec({0.25});
  return w;
}

TEST_F(RewardMathTest, AggregationMatchesT62AndTrainsEveryWeight) {
  DmoermAggregatorWeights w = t62_weights();
  for (at::Tensor* t : {&w.w1, &w.b1, &w.w2, &w.b2, &w.prelu_weight}) t->requires_grad_();
  const at::Tensor hidden = vec({1, 0, 0, -2}).reshape({1, 2, 2});  // [1, K=2, H=2]
  const at::Tensor reward = dmoerm_aggregate(hidden, w);            // [1]
  ASSERT_EQ(reward.sizes(), at::IntArrayRef({1}));
  EXPECT_DOUBLE_EQ(reward.item<double>(), 0.5);
  reward.sum().backward();
  // Pre-activations [1, -2]: d/d slope = w2[1] * -2, d/d w2 = PReLU = [1, -0.5], d/d b2 = 1.
  EXPECT_DOUBLE_EQ(w.prelu_weight.grad().item<double>(), -4.0);
  testing::expect_tensor_near(w.w2.grad(), vec({1, -0.5}), 1e-12, "grad w2");
  EXPECT_DOUBLE_EQ(w.b2.grad().item<double>(), 1.0);
  testing::expect_tensor_near(w.b1.grad(), vec({1, 0.5}), 1e-12, "grad b1");
}

TEST_F(RewardMathTest, OneHotAggregationReturnsThatDimension) {
  // H = 1: each expert contributes one score; a one-hot w1 row picks expert k.
  const at::Tensor scores = vec({0.7, 2.5, 1.25, 3.0, 0.5, 4.0}).reshape({2, 3, 1});  // [2, 3, 1]
  for (int64_t k = 0; k < 3; ++k) {
    DmoermAggregatorWeights w;
    w.w1 = torch::zeros({1, 3}, torch::kDouble);
    w.w1[0][k] = 1.0;
    w.b1 = vec({0});
    w.w2 = vec({1});
    w.b2 = vec({0});
    w.prelu_weight = vec({0.25});
    testing::expect_tensor_near(dmoerm_aggregate(scores, w), scores.select(2, 0).select(1, k),
                                1e-12, "expert " + std::to_string(k));
    // A negative score goes through PReLU's slope.
    testing::expect_tensor_near(dmoerm_aggregate(-scores, w),
                                -0.25 * scores.select(2, 0).select(1, k), 1e-12, "negative");
  }
}

TEST_F(RewardMathTest, AggregationRefusesBadShapes) {
  const at::Tensor hidden = vec({1, 0, 0, -2}).reshape({1, 2, 2});
  DmoermAggregatorWeights w = t62_weights();
  expect_invalid([&] { dmoerm_aggregate(hidden.reshape({1, 4}), w); }, "got [1, 4]");
  w.w1 = torch::zeros({2, 3}, torch::kDouble);
  expect_invalid([&] { dmoerm_aggregate(hidden, w); }, "w1 [M, K*H] = [M, 4] for hidden [1, 2, 2]");
  w = t62_weights();
  w.b1 = vec({0, 0, 0});
  expect_invalid([&] { dmoerm_aggregate(hidden, w); }, "got [3] and [2]");
  w = t62_weights();
  w.prelu_weight = vec({0.25, 0.25});
  expect_invalid([&] { dmoerm_aggregate(hidden, w); }, "scalar or [1]");
  w = t62_weights();
  w.w2 = torch::ones({2});
  expect_invalid([&] { dmoerm_aggregate(hidden, w); }, "dtype Double, got Float");
}

}  // namespace
}  // namespace rudder::rewards
