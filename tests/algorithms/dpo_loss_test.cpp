#include "algorithms/dpo_loss.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"

namespace rudder::algorithms {
namespace {

TEST(DpoLoss, GradientPushesChosenUpAndRejectedDown) {
  at::Tensor pc = torch::tensor({-10.0}, torch::requires_grad());
  at::Tensor pr = torch::tensor({-12.0}, torch::requires_grad());
  DpoLossOptions o;
  const auto out = dpo_loss(pc, pr, torch::tensor({-11.0}), torch::tensor({-11.0}), o);
  out.loss.backward();
  EXPECT_LT(pc.grad().item<double>(), 0.0);  // descending the loss raises logp(chosen)
  EXPECT_GT(pr.grad().item<double>(), 0.0);
}

TEST(DpoLoss, BadOptionsAreRefused) {
  DpoLossOptions o;
  o.loss_type = "kto";
  const at::Tensor x = torch::zeros({1});
  EXPECT_THROW(dpo_loss(x, x, x, x, o), core::InvalidArgument);
  o.loss_type = "robust";
  o.label_smoothing = 0.5;
  EXPECT_THROW(dpo_loss(x, x, x, x, o), core::InvalidArgument);
  o.loss_type = "ipo";
  o.label_smoothing = 0;
  EXPECT_THROW(dpo_loss(x, x, x, x, o), core::InvalidArgument);  // needs lengths
}

}  // namespace
}  // namespace rudder::algorithms
