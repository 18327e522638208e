#include "models/autocast.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace rudder::models {
namespace {

TEST(Autocast, GuardRunsProductsInBfloat16AndRestores) {
  const at::Tensor a = torch::randn({4, 8}), w = torch::randn({3, 8});
  EXPECT_FALSE(autocast_enabled(c10::DeviceType::CPU));
  {
    AutocastGuard guard(c10::DeviceType::CPU, true);
    EXPECT_TRUE(autocast_enabled(c10::DeviceType::CPU));
    EXPECT_EQ(torch::linear(a, w).scalar_type(), torch::kBFloat16);
    EXPECT_EQ(torch::matmul(a, w.t()).scalar_type(), torch::kBFloat16);
    // Reductions the losses use stay float32 on float32 inputs.
    EXPECT_EQ(torch::logsumexp(a, -1).scalar_type(), torch::kFloat);
    {
      NoAutocastGuard off;
      EXPECT_FALSE(autocast_enabled(c10::DeviceType::CPU));
      EXPECT_EQ(torch::linear(a, w).scalar_type(), torch::kFloat);
    }
    EXPECT_TRUE(autocast_enabled(c10::DeviceType::CPU));
  }
  EXPECT_FALSE(autocast_enabled(c10::DeviceType::CPU));
  EXPECT_EQ(torch::linear(a, w).scalar_type(), torch::kFloat);
}

TEST(Autocast, DisabledGuardDoesNothing) {
  AutocastGuard guard(c10::DeviceType::CPU, false);
  EXPECT_FALSE(autocast_enabled(c10::DeviceType::CPU));
}

TEST(Autocast, GradientsOfFloat32WeightsAreFloat32) {
  at::Tensor w = torch::randn({3, 8}, torch::requires_grad());
  at::Tensor loss;
  {
    AutocastGuard guard(c10::DeviceType::CPU, true);
    loss = torch::linear(torch::randn({4, 8}), w).to(torch::kFloat).pow(2).sum();
  }
  loss.backward();
  EXPECT_EQ(w.grad().scalar_type(), torch::kFloat);
}

}  // namespace
}  // namespace rudder::models
