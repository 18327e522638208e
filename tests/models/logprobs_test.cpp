#include "models/logprobs.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/heads.h"
#include "tests/support/tensor_testing.h"

namespace rudder::models {
namespace {

class LogprobsTest : public testing::SeededTest {};

TEST_F(LogprobsTest, TokenLogprobsAreShiftedLogSoftmax) {
  const at::Tensor logits = torch::randn({2, 5, 7}) * 3;
  const at::Tensor ids = torch::randint(0, 7, {2, 5});
  const at::Tensor got = token_logprobs(logits, ids);
  const at::Tensor reference = torch::log_softmax(logits.to(torch::kDouble), -1);
  for (int64_t b = 0; b < 2; ++b) {
    EXPECT_EQ(got[b][0].item<double>(), 0.0);
    for (int64_t t = 1; t < 5; ++t) {
      EXPECT_NEAR(got[b][t].item<double>(),
                  reference[b][t - 1][ids[b][t].item<int64_t>()].item<double>(), 1e-5);
    }
  }
  const at::Tensor mask = torch::tensor({{0, 0, 1, 1, 0}, {0, 1, 1, 1, 1}});
  const at::Tensor sums = sequence_logprobs(logits, ids, mask);
  EXPECT_NEAR(sums[0].item<double>(), (got[0][2] + got[0][3]).item<double>(), 1e-5);
  const at::Tensor means = sequence_logprobs(logits, ids, mask, true);
  EXPECT_NEAR(means[1].item<double>(), got[1].narrow(0, 1, 4).sum().item<double>() / 4, 1e-5);
}

TEST_F(LogprobsTest, MaskedMeanIsOverTokensNotRows) {
  const at::Tensor v = torch::tensor({{1.0, 2.0}, {3.0, 0.0}});
  const at::Tensor m = torch::tensor({{1, 1}, {1, 0}});
  EXPECT_DOUBLE_EQ(masked_mean(v, m).item<double>(), 2.0);  // (1 + 2 + 3) / 3, not (1.5 + 3) / 2
  EXPECT_TRUE(torch::allclose(masked_row_mean(v, m), torch::tensor({1.5, 3.0})));
  EXPECT_DOUBLE_EQ(masked_mean(v, torch::zeros({2, 2})).item<double>(), 0.0);
}

TEST_F(LogprobsTest, ScalarHeadReadsTheLastRealToken) {
  const at::Tensor mask = torch::tensor({{1, 1, 1, 0}, {0, 1, 1, 1}, {1, 0, 0, 0}});
  EXPECT_TRUE(torch::equal(last_real_index(mask), torch::tensor({2, 3, 0})));
  ScalarHead head(6);
  const at::Tensor hidden = torch::randn({3, 4, 6});
  const at::Tensor scores = head->sequence_scores(hidden, mask);
  const at::Tensor per_position = head->forward(hidden);  // also the value head's output
  ASSERT_EQ(per_position.sizes(), (std::vector<int64_t>{3, 4}));
  EXPECT_FLOAT_EQ(scores[0].item<float>(), per_position[0][2].item<float>());
  EXPECT_FLOAT_EQ(scores[1].item<float>(), per_position[1][3].item<float>());
  EXPECT_FLOAT_EQ(scores[2].item<float>(), per_position[2][0].item<float>());
}

}  // namespace
}  // namespace rudder::models
