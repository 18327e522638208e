// Tensor helpers for tests that use libtorch.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <string>

namespace rudder::testing {

/// Where the golden tests run their models and ops: `$RUDDER_TEST_DEVICE` (cpu when unset; cuda
/// on a GPU machine, as scripts/gpu-check.sh sets it). A device libtorch cannot use fails the
/// test rather than falling back quietly.
inline torch::Device test_device() {
  const char* name = std::getenv("RUDDER_TEST_DEVICE");
  const torch::Device device(name != nullptr && *name != '\0' ? name : "cpu");
  if (device.is_cuda() && !torch::cuda::is_available())
    throw std::runtime_error("RUDDER_TEST_DEVICE asks for CUDA, which libtorch does not see");
  if (device.is_cuda()) {  // float32 products in float32: TF32 would round them to 10 bits
    at::globalContext().setAllowTF32CuBLAS(false);
    at::globalContext().setAllowTF32CuDNN(false);
  }
  return device;
}

/// The tensors of `tensors` moved to `device`.
template <typename Map>
Map to_device(Map tensors, const torch::Device& device) {
  for (auto& entry : tensors) entry.second = entry.second.to(device);
  return tensors;
}

/// Seeds libtorch's generator before each test, so tests do not depend on their order.
class SeededTest : public ::testing::Test {
 protected:
  void SetUp() override { torch::manual_seed(1234); }
};

/// Largest |actual - expected| over the positions where `mask` (broadcastable, 0/1) is 1; what
/// is elsewhere, NaN or infinity included, does not count.
inline double max_abs_diff(const at::Tensor& actual, const at::Tensor& expected,
                           const at::Tensor& mask = {}) {
  // On the CPU, so a result computed on the GPU compares with a reference read from disk.
  at::Tensor diff =
      (actual.to(torch::kCPU, torch::kDouble) - expected.to(torch::kCPU, torch::kDouble)).abs();
  if (mask.defined())
    diff = torch::where(mask.to(torch::kCPU) != 0, diff, torch::zeros({}, diff.options()));
  return diff.numel() == 0 ? 0.0 : diff.max().item<double>();
}

/// Expects equal shapes and max |actual - expected| <= atol where `mask` is 1 (rtol 0).
inline void expect_tensor_near(const at::Tensor& actual, const at::Tensor& expected, double atol,
                               const std::string& what, const at::Tensor& mask = {}) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const double diff = max_abs_diff(actual, expected, mask);
  EXPECT_LE(diff, atol) << what << ": max abs difference " << diff << " > " << atol;
}

/// Expects equal shapes and |actual - expected| <= atol + rtol * |expected| everywhere, as
/// torch.allclose: for sums over many terms (gradients), whose rounding grows with their size.
inline void expect_tensor_close(const at::Tensor& actual, const at::Tensor& expected, double atol,
                                double rtol, const std::string& what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const at::Tensor a = actual.to(torch::kCPU, torch::kDouble);
  const at::Tensor e = expected.to(torch::kCPU, torch::kDouble);
  const at::Tensor excess = (a - e).abs() - (atol + rtol * e.abs());
  const double worst = excess.numel() == 0 ? 0.0 : excess.max().item<double>();
  EXPECT_LE(worst, 0.0) << what << ": exceeds atol " << atol << " + rtol " << rtol
                        << " * |expected| by up to " << worst << " (max abs difference "
                        << max_abs_diff(a, e) << ")";
}

}  // namespace rudder::testing
