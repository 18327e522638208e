// ForwardInput::right_padded: with every row's padding at its end the model masks causally
// alone (on CUDA, libtorch's causal kernel without a mask) and gives the logits at real
// positions, and the gradients of a loss over them, that the full mask gives; models::right_padded
// says which masks qualify, and a CPU mask that does not is refused.
#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "models/autocast.h"
#include "models/causal_lm.h"
#include "tests/support/tensor_testing.h"
#include "tests/support/tiny_models.h"

namespace rudder::models {
namespace {

using testing::expect_tensor_near;

at::Tensor mask_of(const std::vector<std::vector<int64_t>>& rows) {
  std::vector<at::Tensor> out;
  for (const auto& r : rows) out.push_back(torch::tensor(r, torch::kLong));
  return torch::stack(out);
}

TEST(RightPadded, SaysWhichMasksHaveTheirPaddingLast) {
  EXPECT_TRUE(right_padded(mask_of({{1, 1, 1, 0}, {1, 0, 0, 0}, {1, 1, 1, 1}})));
  EXPECT_TRUE(right_padded(mask_of({{0, 0, 0}})));  // an empty row
  EXPECT_TRUE(right_padded(mask_of({{1}, {0}})));
  EXPECT_TRUE(right_padded(mask_of({{1, 1, 0}}).to(torch::kBool)));
  EXPECT_FALSE(right_padded(mask_of({{1, 1, 1, 0}, {0, 1, 1, 1}})));  // left padding
  EXPECT_FALSE(right_padded(mask_of({{1, 0, 1, 0}})));                // a hole
  EXPECT_THROW(right_padded(torch::ones({4}, torch::kLong)), core::InvalidArgument);
}

// batch_input moves a collated batch to the device and sets the flag from its CPU mask: right
// padding takes it, left padding does not.
TEST(RightPadded, BatchInputSetsTheFlagFromTheCpuMask) {
  const at::Device cpu(torch::kCPU);
  const at::Tensor right = mask_of({{1, 1, 0}, {1, 1, 1}}), left = mask_of({{0, 1, 1}, {1, 1, 1}});
  const at::Tensor ids = torch::tensor({{5, 6, 0}, {7, 8, 9}}),
                   pos = torch::arange(3).repeat({2, 1});
  const ForwardInput in = batch_input(ids, right, pos, cpu);
  EXPECT_TRUE(in.right_padded);
  EXPECT_TRUE(torch::equal(in.input_ids, ids) && torch::equal(in.attention_mask, right) &&
              torch::equal(in.position_ids, pos));
  EXPECT_FALSE(batch_input(ids, left, pos, cpu).right_padded);
  EXPECT_EQ(in.cache, nullptr);
  EXPECT_FALSE(in.segment_ids.defined() || in.logits_positions.defined());
}

// A right-padded batch: rows of 12, 5, 9 and 1 real tokens, padding token 0 after them.
struct Batch {
  at::Tensor ids, mask, positions;
};

Batch right_padded_batch(int64_t vocab) {
  const std::vector<int64_t> lengths = {12, 5, 9, 1};
  const int64_t B = static_cast<int64_t>(lengths.size()), T = 12;
  Batch b;
  b.mask = torch::zeros({B, T}, torch::kLong);
  for (int64_t i = 0; i < B; ++i) b.mask[i].narrow(0, 0, lengths[i]).fill_(1);
  b.ids = torch::randint(1, vocab, {B, T}).masked_fill(b.mask == 0, 0);
  b.positions = torch::arange(T).repeat({B, 1}).masked_fill(b.mask == 0, 0);
  return b;
}

struct Run {
  at::Tensor logits;              // [B, T, vocab], float32 on the CPU, zero at pads
  std::vector<at::Tensor> grads;  // each parameter's, float32 on the CPU
};

// Logits and the gradients of a loss over real positions alone, with or without the flag.
Run run(CausalLM& model, const Batch& cpu, const at::Device& device, bool flag, bool autocast) {
  model.zero_grad();
  ForwardInput in{cpu.ids.to(device), cpu.mask.to(device), cpu.positions.to(device)};
  in.right_padded = flag;
  const at::Tensor real = cpu.mask.to(device, torch::kFloat).unsqueeze(-1);  // 1 at real tokens
  at::Tensor logits;
  {
    AutocastGuard guard(device.type(), autocast);
    logits = model.forward(in).to(torch::kFloat) * real;
  }
  (logits.pow(2).sum() + logits.sum()).backward();
  Run r{logits.detach().cpu(), {}};
  for (const auto& p : model.parameters()) r.grads.push_back(p.grad().to(torch::kFloat).cpu());
  return r;
}

// Each tensor within `tol` of its own largest magnitude (at least 1): the logits, and every
// parameter's gradient, each a sum over many positions.
void expect_same(const Run& flagged, const Run& full, double tol, const std::string& what) {
  auto near = [&](const at::Tensor& got, const at::Tensor& expected, const std::string& name) {
    ASSERT_EQ(got.sizes(), expected.sizes()) << name;
    const double scale = std::max(1.0, expected.abs().max().item<double>());
    EXPECT_LE(testing::max_abs_diff(got, expected), tol * scale) << what << ": " << name;
  };
  near(flagged.logits, full.logits, "logits at real positions");
  ASSERT_EQ(flagged.grads.size(), full.grads.size());
  for (size_t i = 0; i < full.grads.size(); ++i)
    near(flagged.grads[i], full.grads[i], "gradient " + std::to_string(i));
}

class RightPaddedModel : public testing::SeededTest,
                         public ::testing::WithParamInterface<std::tuple<Architecture, bool>> {};

// On the CPU, in float32, with and without activation checkpointing (which keeps no attention
// probabilities and recomputes them in the backward).
TEST_P(RightPaddedModel, CausalMaskAloneGivesTheRealPositionsTheirLogitsAndGradients) {
  const auto [architecture, checkpointing] = GetParam();
  CausalLM model(testing::tiny_model(architecture));
  model.set_activation_checkpointing(checkpointing);
  const Batch b = right_padded_batch(40);
  const at::Device cpu(torch::kCPU);
  expect_same(run(model, b, cpu, true, false), run(model, b, cpu, false, false), 1e-6, "cpu");
  // The flag took the causal path: pad positions, which now attend to the pads before them too,
  // get other logits.
  torch::NoGradGuard no_grad;
  ForwardInput in{b.ids, b.mask, b.positions};
  const at::Tensor full = model.forward(in);
  in.right_padded = true;
  const at::Tensor pads = (b.mask == 0).unsqueeze(-1).expand_as(full);
  EXPECT_GT((model.forward(in) - full).abs().masked_select(pads).max().item<double>(), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(BothFamilies, RightPaddedModel,
                         ::testing::Combine(::testing::Values(Architecture::kLlama,
                                                              Architecture::kGpt2),
                                            ::testing::Bool()));

TEST(RightPadded, AFlagTheCpuMaskContradictsIsRefused) {
  CausalLM model(testing::tiny_model(Architecture::kLlama));
  Batch b = right_padded_batch(40);
  b.mask = b.mask.flip({1});  // left padding
  ForwardInput in{b.ids, b.mask, b.positions};
  in.right_padded = true;
  try {
    model.forward(in);
    FAIL() << "a left-padded mask passed as right-padded";
  } catch (const core::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("right_padded"), std::string::npos) << e.what();
  }
}

// The flag changes nothing where it does not apply: packed rows (segments) and a cache.
TEST(RightPadded, IgnoredWithSegmentsAndWithACache) {
  torch::manual_seed(3);
  CausalLM model(testing::tiny_model(Architecture::kLlama));
  model.eval();
  torch::NoGradGuard no_grad;
  const at::Tensor ids = torch::randint(1, 40, {1, 8});
  const at::Tensor mask = torch::ones({1, 8}, torch::kLong);
  ForwardInput packed{ids, mask, torch::cat({torch::arange(3), torch::arange(5)}).unsqueeze(0)};
  packed.segment_ids =
      torch::cat({torch::zeros({3}), torch::ones({5})}).to(torch::kLong).view({1, 8});
  const at::Tensor expected = model.forward(packed);
  packed.right_padded = true;
  expect_tensor_near(model.forward(packed), expected, 0.0, "packed rows");

  KVCache with, without;
  const at::Tensor pos = torch::arange(8).unsqueeze(0);
  model.forward({ids.narrow(1, 0, 4), mask.narrow(1, 0, 4), pos.narrow(1, 0, 4), &with});
  model.forward({ids.narrow(1, 0, 4), mask.narrow(1, 0, 4), pos.narrow(1, 0, 4), &without});
  ForwardInput next{ids.narrow(1, 4, 4), mask, pos.narrow(1, 4, 4), &with};
  next.right_padded = true;
  expect_tensor_near(model.forward(next),
                     model.forward({ids.narrow(1, 4, 4), mask, pos.narrow(1, 4, 4), &without}), 0.0,
                     "a step on a cache");
}

// On a GPU (libtorch >= 2): the causal kernel without a mask against the masked one, in float32
// and under bf16 autocast, both families. Float32 within 1e-3 of each tensor's largest value
// (the kernels may use TF32 products), autocast within 3e-2 (bf16 rounds at 4e-3).
TEST(RightPaddedCuda, CausalKernelMatchesTheMaskedOne) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const at::Device cuda(torch::kCUDA);
  for (const Architecture architecture : {Architecture::kLlama, Architecture::kGpt2}) {
    for (const bool autocast : {false, true}) {
      torch::manual_seed(5);
      CausalLM model(testing::tiny_model(architecture));
      model.to(cuda);
      const Batch b = right_padded_batch(40);
      const std::string what =
          std::string(architecture == Architecture::kLlama ? "llama" : "gpt2") +
          (autocast ? ", autocast" : ", float32");
      expect_same(run(model, b, cuda, true, autocast), run(model, b, cuda, false, autocast),
                  autocast ? 3e-2 : 1e-3, what);
    }
  }
}

}  // namespace
}  // namespace rudder::models
