// Tensor helpers for tests that use libtorch.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

namespace rudder::testing {

/// Seeds libtorch's generator before each test, so tests do not depend on their order.
class SeededTest : public ::testing::Test {
 protected:
  void SetUp() override { torch::manual_seed(1234); }
};

/// Largest |actual - expected| over the positions where `mask` (broadcastable, 0/1) is 1.
inline double max_abs_diff(const at::Tensor& actual, const at::Tensor& expected,
                           const at::Tensor& mask = {}) {
  at::Tensor diff = (actual.to(torch::kDouble) - expected.to(torch::kDouble)).abs();
  if (mask.defined()) diff = diff * mask.to(torch::kDouble);
  return diff.numel() == 0 ? 0.0 : diff.max().item<double>();
}

/// Expects equal shapes and max |actual - expected| <= atol where `mask` is 1 (rtol 0).
inline void expect_tensor_near(const at::Tensor& actual, const at::Tensor& expected, double atol,
                               const std::string& what, const at::Tensor& mask = {}) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const double diff = max_abs_diff(actual, expected, mask);
  EXPECT_LE(diff, atol) << what << ": max abs difference " << diff << " > " << atol;
}

}  // namespace rudder::testing
