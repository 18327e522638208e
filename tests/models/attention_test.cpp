#include "models/detail/attention.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/autocast.h"
#include "tests/support/tensor_testing.h"

namespace rudder::models::detail {
namespace {

using testing::max_abs_diff;

// Gradients in bf16 against float32 ones, relative to the largest element.
constexpr double kBf16Tolerance = 0.02;

// Grouped-query attention inputs: B 2, H 4, Hkv 2, T 37, D 8, causal, row 1 left-padded by 5
// (its first query rows see no key at all), so blocks of 5 rows cut through every case.
struct Inputs {
  at::Tensor q, k, v, blocked, weight;
};

Inputs make_inputs(torch::Dtype dtype) {
  torch::manual_seed(7);
  const int64_t B = 2, H = 4, Hkv = 2, T = 37, D = 8;
  Inputs in;
  in.q = torch::randn({B, H, T, D}).to(dtype).requires_grad_(true);
  in.k = torch::randn({B, Hkv, T, D}).to(dtype).requires_grad_(true);
  in.v = torch::randn({B, Hkv, T, D}).to(dtype).requires_grad_(true);
  at::Tensor mask = torch::ones({B, T}, torch::kBool);
  mask.index_put_({1, torch::indexing::Slice(0, 5)}, false);
  const at::Tensor pos = torch::arange(T);
  const at::Tensor allowed =
      (pos.unsqueeze(0) <= pos.unsqueeze(1)).unsqueeze(0) & mask.unsqueeze(1);  // [B, T, S]
  in.blocked = allowed.logical_not().unsqueeze(1);                              // [B, 1, T, S]
  in.weight = torch::randn({B, H, T, D});  // the loss is sum(out * weight)
  return in;
}

// The output and the gradients of q, k and v, float64.
std::vector<at::Tensor> run(const Inputs& in, AttentionMemory memory, int64_t rows) {
  for (const at::Tensor* t : {&in.q, &in.k, &in.v}) t->mutable_grad() = at::Tensor();
  const at::Tensor out = attend(in.q, in.k, in.v, in.blocked, memory, rows);
  (out.to(torch::kFloat) * in.weight).sum().backward();
  return {out.detach().to(torch::kDouble), in.q.grad().to(torch::kDouble),
          in.k.grad().to(torch::kDouble), in.v.grad().to(torch::kDouble)};
}

// The same math written out in float64: softmax over the whole scores, autograd through it.
std::vector<at::Tensor> reference(const Inputs& in) {
  const at::Tensor q = in.q.detach().to(torch::kDouble).requires_grad_(true);
  const at::Tensor k = in.k.detach().to(torch::kDouble).requires_grad_(true);
  const at::Tensor v = in.v.detach().to(torch::kDouble).requires_grad_(true);
  const int64_t groups = q.size(1) / k.size(1);
  const at::Tensor scores =
      (torch::matmul(q, k.repeat_interleave(groups, 1).transpose(-2, -1)) / std::sqrt(8.0))
          .masked_fill(in.blocked, -1e30);
  const at::Tensor out = torch::matmul(torch::softmax(scores, -1), v.repeat_interleave(groups, 1));
  (out * in.weight.to(torch::kDouble)).sum().backward();
  return {out.detach(), q.grad(), k.grad(), v.grad()};
}

TEST(AttentionTest, BothMemoryModesMatchTheFullSoftmaxAndItsGradients) {
  const Inputs in = make_inputs(torch::kFloat);
  const auto expected = reference(in);
  const char* names[] = {"output", "dq", "dk", "dv"};
  for (const auto memory : {AttentionMemory::kKeepProbabilities, AttentionMemory::kRecompute}) {
    for (const int64_t rows : {int64_t{5}, int64_t{64}}) {
      const auto got = run(in, memory, rows);
      const std::string mode =
          std::string(memory == AttentionMemory::kRecompute ? "recompute, " : "keep, ") +
          std::to_string(rows) + " rows";
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(got[i].sizes(), expected[i].sizes()) << names[i] << " (" << mode << ")";
        EXPECT_LE(max_abs_diff(got[i], expected[i]), 1e-5) << names[i] << " (" << mode << ")";
      }
      // Row 1's first 5 queries see no key: their output is the mean of v whatever q and k,
      // so they give q no gradient.
      EXPECT_EQ(got[1].select(0, 1).narrow(1, 0, 5).abs().max().item<double>(), 0.0) << mode;
    }
  }
}

TEST(AttentionTest, RecomputeInBfloat16StaysWithinItsRounding) {
  const Inputs in = make_inputs(torch::kBFloat16);
  const auto expected = reference(in);
  const auto got = run(in, AttentionMemory::kRecompute, 5);
  const char* names[] = {"output", "dq", "dk", "dv"};
  for (size_t i = 0; i < got.size(); ++i) {
    const double scale = expected[i].abs().max().item<double>();
    EXPECT_LE(max_abs_diff(got[i], expected[i]), kBf16Tolerance * scale) << names[i] << " (bf16)";
  }
}

// In bfloat16, and in float32 under bf16 autocast, the recomputing backward rebuilds the very
// probabilities the forward used (the same dtype and autocast state): its gradients match the
// kept probabilities' within bf16 rounding, with logits of realistic size (q scaled by 4).
TEST(AttentionTest, RecomputeMatchesKeepInBfloat16AndUnderAutocast) {
  for (const bool autocast : {false, true}) {
    const Inputs in = make_inputs(autocast ? torch::kFloat : torch::kBFloat16);
    {
      torch::NoGradGuard no_grad;
      in.q.mul_(4);
    }
    auto grads = [&](AttentionMemory memory) {
      for (const at::Tensor* t : {&in.q, &in.k, &in.v}) t->mutable_grad() = at::Tensor();
      at::Tensor out;
      {
        models::AutocastGuard guard(c10::DeviceType::CPU, autocast);
        out = attend(in.q, in.k, in.v, in.blocked, memory, 5);
      }
      (out.to(torch::kFloat) * in.weight).sum().backward();
      return std::vector<at::Tensor>{out.detach().to(torch::kFloat), in.q.grad().to(torch::kFloat),
                                     in.k.grad().to(torch::kFloat), in.v.grad().to(torch::kFloat)};
    };
    const auto keep = grads(AttentionMemory::kKeepProbabilities);
    const auto recompute = grads(AttentionMemory::kRecompute);
    const char* names[] = {"output", "dq", "dk", "dv"};
    for (size_t i = 0; i < keep.size(); ++i) {
      const double scale = keep[i].abs().max().item<double>();
      EXPECT_LE(max_abs_diff(recompute[i], keep[i]), kBf16Tolerance * scale)
          << names[i] << (autocast ? " (autocast)" : " (bf16)");
    }
  }
}

// On a GPU with libtorch >= 2 attend() runs libtorch's fused attention: both memory modes, in
// float32 and under bf16 autocast, match the float64 reference, pad rows (row 1's first 5, which
// see no key) included, with every value finite and no gradient to q from the pad rows. Float32
// within 2e-3 of each tensor's largest element (the kernels may use TF32 products).
TEST(AttentionCuda, FusedKernelMatchesTheReferenceWithPadRows) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const bool autocast : {false, true}) {
    const Inputs cpu = make_inputs(torch::kFloat);
    const auto expected = reference(cpu);
    Inputs in;
    for (auto [from, to] :
         {std::pair{&cpu.q, &in.q}, std::pair{&cpu.k, &in.k}, std::pair{&cpu.v, &in.v}}) {
      *to = from->detach().to(torch::kCUDA).requires_grad_(true);
    }
    in.blocked = cpu.blocked.to(torch::kCUDA);
    in.weight = cpu.weight.to(torch::kCUDA);
    for (const auto memory : {AttentionMemory::kKeepProbabilities, AttentionMemory::kRecompute}) {
      for (const at::Tensor* t : {&in.q, &in.k, &in.v}) t->mutable_grad() = at::Tensor();
      at::Tensor out;
      {
        models::AutocastGuard guard(c10::DeviceType::CUDA, autocast);
        out = attend(in.q, in.k, in.v, in.blocked, memory);
      }
      (out.to(torch::kFloat) * in.weight).sum().backward();
      const std::vector<at::Tensor> got = {
          out.detach().to(torch::kDouble), in.q.grad().to(torch::kDouble),
          in.k.grad().to(torch::kDouble), in.v.grad().to(torch::kDouble)};
      const char* names[] = {"output", "dq", "dk", "dv"};
      for (size_t i = 0; i < got.size(); ++i) {
        const std::string what = std::string(names[i]) + (autocast ? " (autocast" : " (float32") +
                                 (memory == AttentionMemory::kRecompute ? ", recompute)" : ")");
        const at::Tensor g = got[i].cpu();
        ASSERT_TRUE(torch::isfinite(g).all().item<bool>()) << what;
        const double scale = expected[i].abs().max().item<double>();
        EXPECT_LE(max_abs_diff(g, expected[i]), (autocast ? kBf16Tolerance : 2e-3) * scale) << what;
      }
      EXPECT_EQ(got[1].cpu().select(0, 1).narrow(1, 0, 5).abs().max().item<double>(), 0.0);
    }
  }
}

}  // namespace
}  // namespace rudder::models::detail
