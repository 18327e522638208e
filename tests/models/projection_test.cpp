#include "models/detail/projection.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "models/autocast.h"
#include "tests/support/tensor_testing.h"

namespace rudder::models::detail {
namespace {

class ProjectTogether : public testing::SeededTest {
 protected:
  void SetUp() override {
    testing::SeededTest::SetUp();
    const char* value = std::getenv("RUDDER_FUSE_PROJECTIONS");
    fusion_off_ = value != nullptr && std::string(value) == "0";
  }
  bool fusion_off_ = false;
};

// Whether the autograd graph of `t` splits one product within a few nodes (the adapter's sum
// may come first).
bool from_one_product(const at::Tensor& t) {
  std::vector<torch::autograd::Node*> level{t.grad_fn().get()};
  for (int depth = 0; depth < 4; ++depth) {
    std::vector<torch::autograd::Node*> next;
    for (torch::autograd::Node* node : level) {
      if (node == nullptr) continue;
      if (node->name().find("SplitWithSizes") != std::string::npos) return true;
      for (const auto& edge : node->next_edges()) next.push_back(edge.function.get());
    }
    level = std::move(next);
  }
  return false;
}

// Outputs and every gradient (of the input, weights, biases and adapters) of project_together
// against each projection on its own, under bf16 autocast on the CPU unless `autocast` is false,
// for a random weighting of the outputs. Both forwards draw the same dropout.
void expect_same_as_one_by_one(std::vector<Projection>& ps, const at::Tensor& x_in, bool fused,
                               bool autocast = true) {
  std::vector<ProjectionImpl*> raw;
  for (auto& p : ps) raw.push_back(p.get());
  auto run = [&](bool together) {
    for (auto& p : ps) p->zero_grad();
    const at::Tensor x = x_in.detach().clone().requires_grad_(true);
    std::vector<at::Tensor> ys;
    torch::manual_seed(3);
    {
      models::AutocastGuard guard(c10::DeviceType::CPU, autocast);
      if (together) {
        ys = project_together(x, raw);
        for (const at::Tensor& y : ys) EXPECT_EQ(from_one_product(y), fused);
      } else {
        for (auto& p : ps) ys.push_back(p->forward(x));
      }
    }
    torch::manual_seed(7);
    at::Tensor loss = torch::zeros({});
    for (const at::Tensor& y : ys)
      loss = loss + (y.to(torch::kFloat) * torch::randn(y.sizes())).sum();
    loss.backward();
    std::vector<at::Tensor> all = ys;
    all.push_back(x.grad().clone());
    for (auto& p : ps)
      for (const auto& w : p->parameters())
        if (w.requires_grad() && w.grad().defined()) all.push_back(w.grad().clone());
    return all;
  };
  const auto separate = run(false);
  const auto together = run(true);
  ASSERT_EQ(separate.size(), together.size());
  for (size_t i = 0; i < separate.size(); ++i) {
    ASSERT_EQ(separate[i].sizes(), together[i].sizes()) << "tensor " << i;
    ASSERT_EQ(separate[i].scalar_type(), together[i].scalar_type()) << "tensor " << i;
    // bf16 rounding apart: the input's gradient is one bf16 product here, a float32 sum of
    // several there. A wrong slice or a lost term would be off by the values themselves.
    const double scale = std::max(1.0, separate[i].abs().max().item<double>());
    EXPECT_LE(testing::max_abs_diff(together[i], separate[i]), 1e-2 * scale) << "tensor " << i;
  }
}

std::vector<Projection> projections(int64_t in, std::vector<int64_t> outs, std::vector<bool> bias) {
  std::vector<Projection> ps;
  for (size_t i = 0; i < outs.size(); ++i) {
    ps.emplace_back(in, outs[i], bias[i]);
    if (bias[i]) {
      torch::NoGradGuard no_grad;
      ps.back()->bias.normal_();
    }
  }
  return ps;
}

TEST_F(ProjectTogether, OneProductUnderAutocastMatchesEachProjectionWithItsGradients) {
  if (fusion_off_) GTEST_SKIP() << "RUDDER_FUSE_PROJECTIONS=0 turns the joint product off";
  auto ps = projections(16, {8, 4, 4}, {false, false, false});
  expect_same_as_one_by_one(ps, torch::randn({2, 40, 16}), /*fused=*/true);
  auto biased = projections(16, {8, 4, 4}, {true, true, true});
  expect_same_as_one_by_one(biased, torch::randn({2, 40, 16}), /*fused=*/true);
}

TEST_F(ProjectTogether, AdaptersAddToTheirOwnSliceWithTheSameDropout) {
  if (fusion_off_) GTEST_SKIP() << "RUDDER_FUSE_PROJECTIONS=0 turns the joint product off";
  auto ps = projections(16, {12, 12}, {false, false});
  ps[0]->enable_lora(4, 8, 0.25);
  ps[1]->enable_lora(4, 8, 0.25);
  {
    torch::NoGradGuard no_grad;
    ps[0]->lora_B->weight.normal_();  // trained adapters: B is no longer zero
    ps[1]->lora_B->weight.normal_();
  }
  expect_same_as_one_by_one(ps, torch::randn({80, 16}), /*fused=*/true);
  ps[1]->merge();
  expect_same_as_one_by_one(ps, torch::randn({80, 16}), /*fused=*/true);
}

TEST_F(ProjectTogether, OutsideAutocastFewRowsOrUnlikeProjectionsRunOneByOne) {
  auto ps = projections(16, {8, 8}, {false, false});
  expect_same_as_one_by_one(ps, torch::randn({kFuseMinRows, 16}), /*fused=*/false,
                            /*autocast=*/false);
  expect_same_as_one_by_one(ps, torch::randn({1, kFuseMinRows - 1, 16}), /*fused=*/false);
  auto mixed_bias = projections(16, {8, 8}, {true, false});
  expect_same_as_one_by_one(mixed_bias, torch::randn({kFuseMinRows, 16}), /*fused=*/false);
  auto half_frozen = projections(16, {8, 8}, {false, false});
  half_frozen[1]->weight.requires_grad_(false);
  expect_same_as_one_by_one(half_frozen, torch::randn({kFuseMinRows, 16}), /*fused=*/false);
  std::vector<Projection> conv1d;
  conv1d.emplace_back(16, 8, false, /*transposed=*/true);
  conv1d.emplace_back(16, 8, false, /*transposed=*/true);
  expect_same_as_one_by_one(conv1d, torch::randn({kFuseMinRows, 16}), /*fused=*/false);
}

// The joined product is project_together's parts side by side, where project_together would
// run one product with no active adapter; nothing where an adapter or the conditions say no.
TEST_F(ProjectTogether, JoinedProductIsThePartsSideBySide) {
  if (fusion_off_) GTEST_SKIP() << "RUDDER_FUSE_PROJECTIONS=0 turns the joint product off";
  auto ps = projections(16, {12, 12}, {false, false});
  const std::vector<ProjectionImpl*> raw{ps[0].get(), ps[1].get()};
  const at::Tensor x = torch::randn({2, kFuseMinRows, 16});
  auto joined_and_parts = [&](const at::Tensor& input, bool autocast) {
    models::AutocastGuard guard(c10::DeviceType::CPU, autocast);
    return std::make_pair(project_joined(input, raw), project_together(input, raw));
  };
  auto expect_parts = [&](const at::Tensor& joined, const std::vector<at::Tensor>& parts) {
    ASSERT_TRUE(joined.defined());
    ASSERT_EQ(joined.sizes(), (std::vector<int64_t>{2, kFuseMinRows, 24}));
    EXPECT_TRUE(joined.narrow(-1, 0, 12).equal(parts[0]));
    EXPECT_TRUE(joined.narrow(-1, 12, 12).equal(parts[1]));
  };
  {
    const auto [joined, parts] = joined_and_parts(x, true);
    expect_parts(joined, parts);
    joined.sum().backward();  // the gradient reaches both weights
    EXPECT_TRUE(ps[0]->weight.grad().defined() && ps[1]->weight.grad().defined());
  }
  EXPECT_FALSE(joined_and_parts(x, false).first.defined());
  EXPECT_FALSE(joined_and_parts(x.narrow(1, 0, kFuseMinRows / 2 - 1), true).first.defined());
  ps[1]->enable_lora(4, 8, 0.0);
  EXPECT_FALSE(joined_and_parts(x, true).first.defined());
  {
    torch::NoGradGuard no_grad;
    ps[1]->lora_B->weight.normal_();
  }
  const at::Tensor adapted = joined_and_parts(x, true).second[1].detach();  // [2, 64, 12]
  ps[1]->merge();  // a merged adapter is in the weights: the joined product has its term
  const auto [joined, parts] = joined_and_parts(x, true);
  expect_parts(joined, parts);
  const double scale = std::max(1.0, adapted.abs().max().item<double>());
  EXPECT_LE(testing::max_abs_diff(joined.narrow(-1, 12, 12).to(torch::kFloat).detach(),
                                  adapted.to(torch::kFloat)),
            2e-2 * scale);
}

}  // namespace
}  // namespace rudder::models::detail
