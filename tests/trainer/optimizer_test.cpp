#include "trainer/optimizer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "proto/rudder.pb.h"
#include "tests/support/tensor_testing.h"
#include "trainer/schedule.h"

namespace rudder::trainer {
namespace {

class OptimizerTest : public testing::SeededTest {};

// Our AdamW (weight decay 0.1, beta1 0.9, eps 1e-8) on a random matrix `w`, which decays, and a
// vector `b`, which does not and whose learning rate is scaled by `b_lr_scale`, beside
// libtorch's AdamW on copies of both with the same settings.
struct BesideLibtorch {
  BesideLibtorch(std::vector<int64_t> w_shape, int64_t b_size, double lr, double beta2,
                 double b_lr_scale = 1.0)
      : w(torch::randn(w_shape, torch::requires_grad())),
        b(torch::randn({b_size}, torch::requires_grad())),
        w_ref(w.detach().clone().requires_grad_(true)),
        b_ref(b.detach().clone().requires_grad_(true)),
        decayed({w_ref}, options(lr, beta2).weight_decay(0.1)),
        plain({b_ref}, options(lr * b_lr_scale, beta2).weight_decay(0.0)) {
    config.set_lr(lr);
    config.set_beta1(0.9);
    config.set_beta2(beta2);
    config.set_eps(1e-8);
    config.set_weight_decay(0.1);
    std::vector<NamedParameter> params = trainable_parameters({{"w", w}, {"b", b}});
    params[1].lr_scale = b_lr_scale;
    ours = std::make_unique<AdamW>(std::move(params), config);
  }
  static torch::optim::AdamWOptions options(double lr, double beta2) {
    return torch::optim::AdamWOptions(lr).betas({0.9, beta2}).eps(1e-8);
  }
  // The same gradients on both sides (cloned for libtorch's), then one step of each.
  void step_with(const at::Tensor& gw, const at::Tensor& gb, double lr) {
    w.mutable_grad() = gw;
    b.mutable_grad() = gb;
    ours->step(lr);
    w_ref.mutable_grad() = gw.clone();
    b_ref.mutable_grad() = gb.clone();
    decayed.step();
    plain.step();
  }
  void expect_the_same(const std::string& what) const {
    testing::expect_tensor_near(w, w_ref, 1e-6, "w " + what);
    testing::expect_tensor_near(b, b_ref, 1e-6, "b " + what);
  }

  at::Tensor w, b, w_ref, b_ref;
  OptimizerConfig config;
  std::unique_ptr<AdamW> ours;
  torch::optim::AdamW decayed, plain;
};

// zero_grad() drops the gradients (set to none); step() then leaves a parameter that got none
// where it is, moments included, and moves the others.
TEST_F(OptimizerTest, ZeroGradDropsGradientsAndStepSkipsAParameterWithoutOne) {
  OptimizerConfig c;
  c.set_lr(1e-2);
  at::Tensor used = torch::randn({3}, torch::requires_grad());
  at::Tensor unused = torch::randn({2}, torch::requires_grad());
  AdamW opt(trainable_parameters({{"used", used}, {"unused", unused}}), c);
  (used.sum() + unused.sum()).backward();
  opt.step(1e-2);
  opt.zero_grad();
  EXPECT_FALSE(used.grad().defined());
  EXPECT_FALSE(unused.grad().defined());
  const at::Tensor used_before = used.detach().clone(), unused_before = unused.detach().clone();
  models::TensorMap state_before;  // state() holds the live tensors: copy them
  for (const auto& [key, value] : opt.state()) state_before.emplace(key, value.clone());
  used.pow(2).sum().backward();
  opt.step(1e-2);
  EXPECT_FALSE(torch::equal(used, used_before));
  EXPECT_TRUE(torch::equal(unused, unused_before));
  const models::TensorMap state_after = opt.state();
  for (const auto& [key, value] : state_after) {
    if (key.find("unused") != std::string::npos) {
      EXPECT_TRUE(torch::equal(value, state_before.at(key))) << key;
    }
  }
}

TEST_F(OptimizerTest, MatchesLibtorchAdamWAndSkipsDecayOnVectors) {
  BesideLibtorch run({5, 3}, 3, 1e-2, 0.99);
  AdamW& ours = *run.ours;
  EXPECT_TRUE(ours.params()[0].decay);
  EXPECT_FALSE(ours.params()[1].decay);
  const at::Tensor x = torch::randn({7, 5});
  for (int step = 0; step < 5; ++step) {
    ours.zero_grad();
    (torch::matmul(x, run.w) + run.b).pow(2).mean().backward();
    ours.step(1e-2);
    run.decayed.zero_grad();
    run.plain.zero_grad();
    (torch::matmul(x, run.w_ref) + run.b_ref).pow(2).mean().backward();
    run.decayed.step();
    run.plain.step();
  }
  run.expect_the_same("after 5 steps");
  EXPECT_EQ(ours.steps(), 5);

  // State round-trips and is checked on load.
  AdamW other(trainable_parameters({{"w", run.w}, {"b", run.b}}), run.config);
  other.load_state(ours.state(), "test");
  EXPECT_EQ(other.steps(), 5);
  EXPECT_THROW(other.load_state({{"steps", torch::tensor({1})}}, "test"), core::InvalidArgument);
}

// Gradients the fused kernel cannot take (here, not contiguous; on a GPU, every one) go through
// the multi-tensor path, which must equal libtorch's AdamW too, decayed or not, with a
// parameter's own learning-rate scale.
TEST_F(OptimizerTest, MultiTensorStepMatchesLibtorchOver20Steps) {
  BesideLibtorch run({5, 3}, 3, 1e-2, 0.99, /*b_lr_scale=*/0.5);
  for (int step = 0; step < 20; ++step) {
    const at::Tensor gw = torch::randn({3, 5}).t();           // [5, 3], transposed strides
    const at::Tensor gb = torch::randn({3, 2}).select(1, 0);  // stride 2
    ASSERT_FALSE(gw.is_contiguous() || gb.is_contiguous());
    run.step_with(gw, gb, 1e-2);
  }
  run.expect_the_same("after 20 multi-tensor steps");
}

// The global norm over every gradient (a parameter without one counts nothing), and scaling.
TEST_F(OptimizerTest, GradNormIsTheL2NormOverEveryGradient) {
  at::Tensor w = torch::zeros({2, 2}, torch::requires_grad());
  at::Tensor b = torch::zeros({3}, torch::requires_grad());
  at::Tensor unused = torch::zeros({4}, torch::requires_grad());
  OptimizerConfig c;
  AdamW ours(trainable_parameters({{"w", w}, {"b", b}, {"unused", unused}}), c);
  EXPECT_EQ(ours.grad_norm(), 0.0);
  w.mutable_grad() = torch::tensor({{1.0, 2.0}, {0.0, 2.0}});  // squares sum to 9
  b.mutable_grad() = torch::tensor({4.0, 0.0, 12.0});          // squares sum to 160
  EXPECT_DOUBLE_EQ(ours.grad_norm(), 13.0);
  ours.scale_grads(0.5);
  EXPECT_DOUBLE_EQ(ours.grad_norm(), 6.5);
}

// The fused one-pass update (float32, contiguous) against libtorch's op-by-op AdamW over 100
// steps of the same gradients (drawn anew each step, some of them tiny, so m / sqrt(v) is
// exercised away from +-1), with decay on the matrix and none on the vector; 60,000 elements
// so the loop runs in parallel chunks. Tolerance 1e-6 absolute on parameters of order 1: float32
// roundings only (libtorch's kernels may fuse a multiply-add where the loop does not).
TEST_F(OptimizerTest, FusedStepMatchesLibtorchOver100Steps) {
  BesideLibtorch run({300, 200}, 200, 3e-3, 0.95);
  const at::Tensor w0 = run.w.detach().clone();
  auto gradient = [](const at::Tensor& p) {
    return torch::randn(p.sizes()) * torch::pow(10.0, -6 * torch::rand(p.sizes()));
  };
  for (int step = 0; step < 100; ++step) run.step_with(gradient(run.w), gradient(run.b), 3e-3);
  run.expect_the_same("after 100 fused steps");
  EXPECT_GT(testing::max_abs_diff(run.w, w0), 0.1) << "the parameters should have moved";
}

TEST_F(OptimizerTest, SchedulesWarmUpThenDecayToTheFloor) {
  ScheduleConfig s;
  s.set_kind("cosine");
  s.set_warmup_steps(4);
  s.set_min_lr_ratio(0.1);
  EXPECT_DOUBLE_EQ(learning_rate(s, 1.0, 0, 20), 0.2);
  EXPECT_DOUBLE_EQ(learning_rate(s, 1.0, 3, 20), 0.8);
  EXPECT_DOUBLE_EQ(learning_rate(s, 1.0, 4, 20), 1.0);
  EXPECT_NEAR(learning_rate(s, 1.0, 12, 20), 0.1 + 0.9 * 0.5, 1e-12);
  EXPECT_NEAR(learning_rate(s, 1.0, 20, 20), 0.1, 1e-12);
  s.set_kind("linear");
  EXPECT_NEAR(learning_rate(s, 2.0, 12, 20), 2.0 * (0.1 + 0.9 * 0.5), 1e-12);
  s.set_kind("constant");
  EXPECT_DOUBLE_EQ(learning_rate(s, 2.0, 19, 20), 2.0);
}

// A bfloat16 weight trains through a float32 master: micro-batch gradients accumulate in
// float32, the master follows float32 AdamW exactly, and the weight is the master rounded.
TEST_F(OptimizerTest, Bfloat16WeightsKeepFloat32MastersAndState) {
  OptimizerConfig c;
  c.set_lr(1e-3);
  c.set_weight_decay(0.0);
  const at::Tensor start = torch::randn({4, 3});
  at::Tensor low = start.to(torch::kBFloat16).requires_grad_(true);
  at::Tensor ref = start.to(torch::kBFloat16).to(torch::kFloat).requires_grad_(true);
  AdamW ours(trainable_parameters({{"w", low}}), c);
  AdamW reference(trainable_parameters({{"w", ref}}), c);
  ASSERT_EQ(ours.params()[0].tensor.scalar_type(), torch::kFloat);
  const at::Tensor x = torch::randn({6, 4});
  for (int step = 0; step < 20; ++step) {
    ours.zero_grad();
    reference.zero_grad();
    for (int micro = 0; micro < 2; ++micro) {
      const at::Tensor g = torch::randn({4, 3}) * 1e-3;  // upstream gradient, exact in bf16
      (low * g.to(torch::kBFloat16)).sum().backward();
      ours.collect_grads();
      (ref * g.to(torch::kBFloat16).to(torch::kFloat)).sum().backward();
    }
    EXPECT_FALSE(low.grad().defined());
    ours.step(1e-3);
    reference.step(1e-3);
  }
  testing::expect_tensor_near(ours.params()[0].tensor, ref, 1e-6, "master against float32");
  EXPECT_TRUE(torch::equal(low, ours.params()[0].tensor.to(torch::kBFloat16)));
  EXPECT_EQ(low.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(ours.state().at("exp_avg.w").scalar_type(), torch::kFloat);

  // Restored state brings the master back, not the rounded weight.
  AdamW restored(trainable_parameters({{"w", low}}), c);
  restored.load_state(ours.state(), "test");
  EXPECT_TRUE(torch::equal(restored.params()[0].tensor, ours.params()[0].tensor));
}

// On a GPU, float32 parameters take libtorch's fused AdamW kernel (torch >= 2): over 100 steps
// of the same gradients it follows the CPU step, with decay on the matrix, none on the vector,
// and the vector's own learning-rate scale (two calls of the kernel). Parameters within 1e-5,
// second moments within 1e-5 relative: float32 roundings, and the kernel's bias corrections
// from a float32 step count.
TEST(AdamWCuda, FusedKernelFollowsTheCpuStepOver100Steps) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(11);
  OptimizerConfig c;
  c.set_lr(3e-3);
  c.set_beta2(0.95);
  c.set_weight_decay(0.1);
  const at::Tensor w0 = torch::randn({300, 200}), b0 = torch::randn({200});
  at::Tensor w_cpu = w0.clone().requires_grad_(true), b_cpu = b0.clone().requires_grad_(true);
  at::Tensor w_gpu = w0.to(torch::kCUDA).requires_grad_(true);
  at::Tensor b_gpu = b0.to(torch::kCUDA).requires_grad_(true);
  auto params = [](const at::Tensor& w, const at::Tensor& b) {
    std::vector<NamedParameter> p = trainable_parameters({{"w", w}, {"b", b}});
    p[1].lr_scale = 0.5;
    return p;
  };
  AdamW cpu(params(w_cpu, b_cpu), c), gpu(params(w_gpu, b_gpu), c);
  for (int step = 0; step < 100; ++step) {
    const at::Tensor gw = torch::randn({300, 200}) * torch::pow(10.0, -6 * torch::rand({300, 200}));
    const at::Tensor gb = torch::randn({200});
    w_cpu.mutable_grad() = gw;
    b_cpu.mutable_grad() = gb;
    w_gpu.mutable_grad() = gw.to(torch::kCUDA);
    b_gpu.mutable_grad() = gb.to(torch::kCUDA);
    cpu.step(3e-3);
    gpu.step(3e-3);
  }
  testing::expect_tensor_near(w_gpu.cpu(), w_cpu, 1e-5, "w after 100 steps");
  testing::expect_tensor_near(b_gpu.cpu(), b_cpu, 1e-5, "b after 100 steps");
  testing::expect_tensor_close(gpu.state().at("exp_avg_sq.w").cpu(), cpu.state().at("exp_avg_sq.w"),
                               1e-12, 1e-5, "second moment of w");
  EXPECT_GT(testing::max_abs_diff(w_cpu, w0), 0.1) << "the parameters should have moved";
}

}  // namespace
}  // namespace rudder::trainer
