// Rudder's CUDA kernels for RoPE and SwiGLU give the values and gradients of the libtorch ops
// they replace, on strided inputs as the joined projections make them, in float32 and bfloat16.
#include "models/detail/fused_elementwise.h"

#include <algorithm>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tests/support/tensor_testing.h"

namespace rudder::models::detail {
namespace {

using testing::max_abs_diff;

TEST(FusedElementwise, NeverForCpuTensors) {
  EXPECT_FALSE(cuda_kernels_apply(torch::ones({2, 2})));
}

// The row strides the kernels step by, for the layouts the model hands them.
TEST(FusedElementwise, RowStridesOfTheLayoutsTheKernelsRead) {
  const int64_t B = 3, T = 5, H = 4, D = 8;
  // q of q/k/v joined: [B, T, H, D] from a [B, T, 3 H D] product.
  const at::Tensor joint = torch::empty({B, T, 3 * H * D});
  EXPECT_EQ(even_row_stride(joint.narrow(-1, H * D, H * D).view({B, T, H, D}), 2), 3 * H * D);
  // A gradient [B, H, 1, D] seen as [B, 1, H, D]: rows are batch rows, H D apart, whatever the
  // stride of the size-1 dimension.
  EXPECT_EQ(even_row_stride(torch::empty({B, H, 1, D}).transpose(1, 2), 2), H * D);
  // With T > 1 the same layout has token rows D apart within a batch row but H T D between
  // batch rows: no single step, as with batch and time swapped.
  EXPECT_EQ(even_row_stride(torch::empty({B, H, T, D}).transpose(1, 2), 2), -1);
  EXPECT_EQ(even_row_stride(torch::empty({T, B, H, D}).transpose(0, 1), 2), -1);
  // The last dimension not contiguous.
  EXPECT_EQ(even_row_stride(torch::empty({B, D, T}).transpose(1, 2), 1), -1);
  // gate and up of gate/up joined, [B, T, I] each from [B, T, 2 I]; and one row.
  EXPECT_EQ(even_row_stride(torch::empty({B, T, 2 * D}).narrow(-1, D, D), 1), 2 * D);
  EXPECT_EQ(even_row_stride(torch::empty({1, 1, D}), 1), 0);
}

bool kernels_here() {
  return torch::cuda::is_available() && cuda_kernels_apply(torch::ones({1}, torch::kCUDA));
}

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// Within `tol` of the largest magnitude of `expected`.
void expect_close(const at::Tensor& got, const at::Tensor& expected, double tol,
                  const std::string& what) {
  ASSERT_EQ(got.sizes(), expected.sizes()) << what;
  ASSERT_EQ(got.scalar_type(), expected.scalar_type()) << what;
  const double scale = std::max(1.0, expected.abs().max().item<double>());
  EXPECT_LE(max_abs_diff(got.to(torch::kDouble).cpu(), expected.to(torch::kDouble).cpu()),
            tol * scale)
      << what;
}

// x [B, T, H, D] as a slice of a wider projection ([B, T, (H + 2) D], as q is of q/k/v joined),
// rotated by positions with gaps; output and gradient against HF's x * cos + rotate_half(x) * sin.
// T = 1 too: the gradient then arrives with strides that libtorch calls contiguous but whose
// size-1 dimension says nothing of the step between rows. Heads of 16 values let the kernel load
// 16 bytes at a time (8 bf16 values of each half); of 12, two values; of 6, one value at a time.
TEST(FusedElementwiseCuda, RopeMatchesTheLibtorchOps) {
  if (!kernels_here()) GTEST_SKIP() << "no CUDA device or no CUDA kernels in this build";
  torch::manual_seed(1);
  const int64_t B = 3, H = 4;
  for (const int64_t D : {16, 12, 6})
    for (const int64_t T : {7, 1})
      for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
        const at::Tensor wide =
            torch::randn({B, T, (H + 2) * D}, torch::dtype(dtype).device(torch::kCUDA));
        const at::Tensor positions = torch::randint(0, 50, {B, T}).to(torch::kFloat);
        const at::Tensor inv =
            torch::pow(10000.0, -torch::arange(0, D / 2, torch::kDouble) * 2.0 / D)
                .to(torch::kFloat);
        const at::Tensor freqs = (positions.unsqueeze(-1) * inv).to(torch::kCUDA);  // [B, T, D/2]
        const at::Tensor emb = torch::cat({freqs, freqs}, -1).unsqueeze(1);         // [B, 1, T, D]
        const at::Tensor weight = torch::randn({B, H, T, D}, torch::kCUDA);

        const at::Tensor x1 = wide.detach().requires_grad_(true);
        const at::Tensor got = rope_cuda(x1.narrow(-1, D, H * D).view({B, T, H, D}),
                                         freqs.cos().contiguous(), freqs.sin().contiguous(), dtype)
                                   .transpose(1, 2);  // [B, H, T, D]
        (got.to(torch::kFloat) * weight).sum().backward();

        const at::Tensor x2 = wide.detach().requires_grad_(true);
        const at::Tensor t = x2.narrow(-1, D, H * D).view({B, T, H, D}).transpose(1, 2);
        const at::Tensor expected =
            (t * emb.cos().to(dtype) + rotate_half(t) * emb.sin().to(dtype));
        (expected.to(torch::kFloat) * weight).sum().backward();

        // The kernel rounds once, where bf16 ops round each product and the sum.
        const double tol = dtype == torch::kFloat ? 1e-5 : 2e-2;
        const std::string name = std::string(dtype == torch::kFloat ? "float32" : "bf16") + ", D " +
                                 std::to_string(D) + ", T " + std::to_string(T);
        expect_close(got, expected.to(dtype), tol, name + " output");
        expect_close(x1.grad(), x2.grad(), tol, name + " gradient");
        EXPECT_EQ(x1.grad().narrow(-1, 0, D).abs().max().item<double>(), 0.0) << name;
      }
}

// bf16 input, float32 angles, output in bf16 (autocast's case): the float32 result rounded once.
TEST(FusedElementwiseCuda, RopeRoundsItsFloat32ResultOnce) {
  if (!kernels_here()) GTEST_SKIP() << "no CUDA device or no CUDA kernels in this build";
  torch::manual_seed(2);
  const int64_t B = 2, T = 5, H = 3, D = 8;
  const at::Tensor x = torch::randn({B, T, H, D}, torch::kCUDA).to(torch::kBFloat16);
  const at::Tensor freqs = torch::rand({B, T, D / 2}, torch::kCUDA) * 20;
  const at::Tensor emb = torch::cat({freqs, freqs}, -1).unsqueeze(2);  // [B, T, 1, D]
  const at::Tensor xf = x.to(torch::kFloat);
  const at::Tensor expected = (xf * emb.cos() + rotate_half(xf) * emb.sin()).to(torch::kBFloat16);
  const at::Tensor got =
      rope_cuda(x, freqs.cos().contiguous(), freqs.sin().contiguous(), torch::kBFloat16);
  // At most one bf16 step apart: float32 products may fuse differently than libtorch's.
  expect_close(got, expected, 1.0 / 128, "bf16 output");
}

// float32 input rotated into bf16 (a float32 q under autocast), and the bf16 gradient rotated
// back into float32: the kernels read one type and write another.
TEST(FusedElementwiseCuda, RopeBetweenFloat32AndBf16) {
  if (!kernels_here()) GTEST_SKIP() << "no CUDA device or no CUDA kernels in this build";
  torch::manual_seed(4);
  const int64_t B = 2, T = 5, H = 3, D = 16;
  const at::Tensor freqs = torch::rand({B, T, D / 2}, torch::kCUDA) * 20;
  const at::Tensor emb = torch::cat({freqs, freqs}, -1).unsqueeze(2);  // [B, T, 1, D]
  const at::Tensor weight = torch::randn({B, T, H, D}, torch::kCUDA);
  const at::Tensor x1 = torch::randn({B, T, H, D}, torch::kCUDA).requires_grad_(true);
  const at::Tensor got =
      rope_cuda(x1, freqs.cos().contiguous(), freqs.sin().contiguous(), torch::kBFloat16);
  (got.to(torch::kFloat) * weight).sum().backward();
  const at::Tensor x2 = x1.detach().clone().requires_grad_(true);
  const at::Tensor expected = x2 * emb.cos() + rotate_half(x2) * emb.sin();
  (expected * weight).sum().backward();
  expect_close(got, expected.detach().to(torch::kBFloat16), 1.0 / 128, "bf16 output");
  // The gradient reaches the kernel rounded to bf16, as the output's type.
  expect_close(x1.grad(), x2.grad(), 2e-2, "float32 gradient");
}

// gate and up as the two halves of one [rows, 2 width] product; output and both gradients against
// silu(gate) * up. Width 24 lets the kernels load 16 bytes at a time; 13 (odd, so up starts at an
// odd element) makes them load one value at a time.
TEST(FusedElementwiseCuda, SwiGluMatchesTheLibtorchOps) {
  if (!kernels_here()) GTEST_SKIP() << "no CUDA device or no CUDA kernels in this build";
  torch::manual_seed(3);
  const int64_t rows = 37;
  for (const int64_t width : {24, 13})
    for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
      const at::Tensor joint = (torch::randn({2, rows, 2 * width}, torch::kCUDA) * 3).to(dtype);
      const at::Tensor weight = torch::randn({2, rows, width}, torch::kCUDA);
      const at::Tensor a = joint.detach().requires_grad_(true);
      const auto parts = a.split(width, -1);
      const at::Tensor got = swiglu_cuda(parts[0], parts[1]);
      (got.to(torch::kFloat) * weight).sum().backward();
      const at::Tensor b = joint.detach().requires_grad_(true);
      const auto ref_parts = b.split(width, -1);
      const at::Tensor expected = torch::silu(ref_parts[0]) * ref_parts[1];
      (expected.to(torch::kFloat) * weight).sum().backward();
      const double tol = dtype == torch::kFloat ? 1e-5 : 2e-2;
      const std::string name = std::string(dtype == torch::kFloat ? "float32" : "bf16") +
                               ", width " + std::to_string(width);
      expect_close(got, expected, tol, name + " output");
      expect_close(a.grad(), b.grad(), tol, name + " gradients");
    }
}

// The same with gate and up handed over joined, [rows, 2 width], and as a slice of a wider
// product (rows 2 width + 8 apart); the gradient comes back joined.
TEST(FusedElementwiseCuda, SwiGluJoinedMatchesTheLibtorchOps) {
  if (!kernels_here()) GTEST_SKIP() << "no CUDA device or no CUDA kernels in this build";
  torch::manual_seed(5);
  const int64_t rows = 37;
  for (const int64_t width : {24, 13})
    for (const int64_t extra : {0, 8})
      for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
        const at::Tensor wide =
            (torch::randn({2, rows, 2 * width + extra}, torch::kCUDA) * 3).to(dtype);
        const at::Tensor weight = torch::randn({2, rows, width}, torch::kCUDA);
        const at::Tensor a = wide.detach().requires_grad_(true);
        const at::Tensor got = swiglu_joined_cuda(a.narrow(-1, 0, 2 * width));
        (got.to(torch::kFloat) * weight).sum().backward();
        const at::Tensor b = wide.detach().requires_grad_(true);
        const at::Tensor expected =
            torch::silu(b.narrow(-1, 0, width)) * b.narrow(-1, width, width);
        (expected.to(torch::kFloat) * weight).sum().backward();
        const double tol = dtype == torch::kFloat ? 1e-5 : 2e-2;
        const std::string name = std::string(dtype == torch::kFloat ? "float32" : "bf16") +
                                 ", width " + std::to_string(width) + ", extra " +
                                 std::to_string(extra);
        expect_close(got, expected, tol, name + " output");
        expect_close(a.grad(), b.grad(), tol, name + " gradient");
      }
}

}  // namespace
}  // namespace rudder::models::detail
