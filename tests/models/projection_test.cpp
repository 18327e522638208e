#include "models/detail/projection.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "tests/support/tensor_testing.h"

namespace rudder::models::detail {
namespace {

class ProjectTogether : public testing::SeededTest {};

std::string grad_name(const at::Tensor& t) {
  return t.grad_fn() ? t.grad_fn()->name() : std::string("none");
}

// Outputs and every gradient (of the input, weights, biases and adapters) of project_together
// against each projection on its own, for a random weighting of the outputs.
void expect_same_as_one_by_one(std::vector<Projection>& ps, const at::Tensor& x_in, bool fused) {
  std::vector<ProjectionImpl*> raw;
  for (auto& p : ps) raw.push_back(p.get());
  auto run = [&](bool together) {
    for (auto& p : ps) p->zero_grad();
    const at::Tensor x = x_in.detach().clone().requires_grad_(true);
    std::vector<at::Tensor> ys;
    if (together) {
      ys = project_together(x, raw);
      EXPECT_EQ(grad_name(ys.front()).find("SplitWithSizes") != std::string::npos, fused)
          << grad_name(ys.front());
    } else {
      for (auto& p : ps) ys.push_back(p->forward(x));
    }
    torch::manual_seed(7);
    at::Tensor loss = torch::zeros({});
    for (const at::Tensor& y : ys) loss = loss + (y * torch::randn(y.sizes())).sum();
    loss.backward();
    std::vector<at::Tensor> all = ys;
    all.push_back(x.grad().clone());
    for (auto& p : ps)
      for (const auto& w : p->parameters())
        if (w.requires_grad()) all.push_back(w.grad().clone());
    return all;
  };
  const auto separate = run(false);
  const auto together = run(true);
  ASSERT_EQ(separate.size(), together.size());
  for (size_t i = 0; i < separate.size(); ++i) {
    ASSERT_EQ(separate[i].sizes(), together[i].sizes()) << "tensor " << i;
    EXPECT_LT(testing::max_abs_diff(together[i], separate[i]), 1e-5) << "tensor " << i;
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

TEST_F(ProjectTogether, OneProductMatchesEachProjectionWithItsGradients) {
  auto ps = projections(16, {8, 4, 4}, {false, false, false});
  expect_same_as_one_by_one(ps, torch::randn({2, 40, 16}), /*fused=*/true);
  auto biased = projections(16, {8, 4, 4}, {true, true, true});
  expect_same_as_one_by_one(biased, torch::randn({2, 40, 16}), /*fused=*/true);
}

TEST_F(ProjectTogether, AdaptersAddToTheirOwnSlice) {
  auto ps = projections(16, {12, 12}, {false, false});
  ps[1]->enable_lora(4, 8, 0.0);
  {
    torch::NoGradGuard no_grad;
    ps[1]->lora_B->weight.normal_();  // a trained adapter: B is no longer zero
  }
  expect_same_as_one_by_one(ps, torch::randn({80, 16}), /*fused=*/true);
  ps[1]->merge();
  expect_same_as_one_by_one(ps, torch::randn({80, 16}), /*fused=*/true);
}

TEST_F(ProjectTogether, FewRowsOrUnlikeProjectionsRunOneByOne) {
  auto ps = projections(16, {8, 8}, {false, false});
  expect_same_as_one_by_one(ps, torch::randn({1, kFuseMinRows - 1, 16}), /*fused=*/false);
  auto mixed_bias = projections(16, {8, 8}, {true, false});
  expect_same_as_one_by_one(mixed_bias, torch::randn({kFuseMinRows, 16}), /*fused=*/false);
  std::vector<Projection> conv1d;
  conv1d.emplace_back(16, 8, false, /*transposed=*/true);
  conv1d.emplace_back(16, 8, false, /*transposed=*/true);
  expect_same_as_one_by_one(conv1d, torch::randn({kFuseMinRows, 16}), /*fused=*/false);
}

}  // namespace
}  // namespace rudder::models::detail
