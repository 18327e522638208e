// Packed rows (several examples per row, block-diagonal attention, per-example positions) give
// each example the logits it gets alone; logits_positions picks positions without changing them.
#include "models/causal_lm.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "data/collate.h"
#include "tests/support/tensor_testing.h"
#include "tests/support/tiny_models.h"

namespace rudder::models {
namespace {

using testing::expect_tensor_near;

class PackingTest : public testing::SeededTest,
                    public ::testing::WithParamInterface<Architecture> {};

TEST_P(PackingTest, PackedExamplesGetTheLogitsTheyGetAlone) {
  CausalLM model(testing::tiny_model(GetParam()));
  model.eval();
  torch::NoGradGuard no_grad;
  const std::vector<data::TokenizedPair> rows = {
      {{1, 2, 3}, {4, 5}}, {{6}, {7, 8, 9}}, {{10, 11}, {12}}, {{13, 14, 15, 16}, {17, 18}}};
  const data::Batch packed = data::pack(rows, 0, 10);
  ASSERT_LT(packed.input_ids.size(0), static_cast<int64_t>(rows.size()));  // something packed
  ForwardInput input{packed.input_ids, packed.attention_mask, packed.position_ids};
  input.segment_ids = packed.segment_ids;
  const at::Tensor logits = model.forward(input);  // [rows, T, V]

  std::vector<int64_t> row_of(rows.size()), start_of(rows.size());
  for (int64_t r = 0; r < packed.segment_ids.size(0); ++r) {
    for (int64_t t = 0; t < packed.segment_ids.size(1); ++t) {
      const int64_t seg = packed.segment_ids[r][t].item<int64_t>();
      if (seg < 0 || packed.position_ids[r][t].item<int64_t>() != 0) continue;
      // The seg-th example of row r is the one whose first token sits here.
      for (size_t i = 0; i < rows.size(); ++i) {
        const auto& first = rows[i].prompt.empty() ? rows[i].response : rows[i].prompt;
        if (first[0] == packed.input_ids[r][t].item<int64_t>()) {
          row_of[i] = r;
          start_of[i] = t;
        }
      }
    }
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    const data::Batch alone = data::collate({rows[i]}, 0);
    const at::Tensor expected =
        model.forward({alone.input_ids, alone.attention_mask, alone.position_ids});  // [1, L, V]
    const int64_t len = expected.size(1);
    expect_tensor_near(logits[row_of[i]].narrow(0, start_of[i], len), expected[0], 1e-5,
                       "example " + std::to_string(i));
  }
}

TEST_P(PackingTest, LogitsPositionsPickRowsOfTheFullLogits) {
  CausalLM model(testing::tiny_model(GetParam()));
  torch::NoGradGuard no_grad;
  const at::Tensor ids = torch::randint(1, 40, {2, 6}, torch::kLong);
  const at::Tensor mask = torch::ones({2, 6}, torch::kLong);
  const at::Tensor pos = torch::arange(6).repeat({2, 1});
  const at::Tensor full = model.forward({ids, mask, pos});  // [2, 6, V]
  ForwardInput input{ids, mask, pos};
  input.logits_positions = torch::tensor({{5, 0}, {2, 3}}, torch::kLong);
  const at::Tensor picked = model.forward(input);  // [2, 2, V]
  ASSERT_EQ(picked.sizes(), (std::vector<int64_t>{2, 2, 40}));
  expect_tensor_near(picked[0][0], full[0][5], 1e-5, "row 0 position 5");
  expect_tensor_near(picked[0][1], full[0][0], 1e-5, "row 0 position 0");
  expect_tensor_near(picked[1][0], full[1][2], 1e-5, "row 1 position 2");
  expect_tensor_near(picked[1][1], full[1][3], 1e-5, "row 1 position 3");
}

TEST_P(PackingTest, SegmentsWithACacheAreRefused) {
  CausalLM model(testing::tiny_model(GetParam()));
  torch::NoGradGuard no_grad;
  const at::Tensor ids = torch::ones({1, 4}, torch::kLong);
  KVCache cache;
  model.forward({ids, torch::ones({1, 4}, torch::kLong), torch::arange(4).unsqueeze(0), &cache});
  ForwardInput input{ids, torch::ones({1, 8}, torch::kLong), torch::arange(4, 8).unsqueeze(0),
                     &cache};
  input.segment_ids = torch::zeros({1, 4}, torch::kLong);
  EXPECT_THROW(model.forward(input), core::InvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(BothFamilies, PackingTest,
                         ::testing::Values(Architecture::kLlama, Architecture::kGpt2));

}  // namespace
}  // namespace rudder::models
