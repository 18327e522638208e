#include "data/collate.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "proto/rudder.pb.h"

namespace rudder::data {
namespace {

TEST(Collate, RightAndLeftPaddingWithPromptMasking) {
  const std::vector<TokenizedPair> rows = {{{1, 2}, {3, 4, 5}}, {{6}, {7}}};
  const Batch right = collate(rows, 0, PadSide::kRight);
  EXPECT_TRUE(torch::equal(right.input_ids, torch::tensor({{1, 2, 3, 4, 5}, {6, 7, 0, 0, 0}})));
  EXPECT_TRUE(
      torch::equal(right.attention_mask, torch::tensor({{1, 1, 1, 1, 1}, {1, 1, 0, 0, 0}})));
  EXPECT_TRUE(torch::equal(right.loss_mask, torch::tensor({{0, 0, 1, 1, 1}, {0, 1, 0, 0, 0}})));
  EXPECT_TRUE(torch::equal(right.position_ids, torch::tensor({{0, 1, 2, 3, 4}, {0, 1, 1, 1, 1}})));

  const Batch left = collate(rows, 9, PadSide::kLeft);
  EXPECT_TRUE(torch::equal(left.input_ids, torch::tensor({{1, 2, 3, 4, 5}, {9, 9, 9, 6, 7}})));
  EXPECT_TRUE(torch::equal(left.loss_mask, torch::tensor({{0, 0, 1, 1, 1}, {0, 0, 0, 0, 1}})));
  EXPECT_TRUE(torch::equal(left.position_ids, torch::tensor({{0, 1, 2, 3, 4}, {0, 0, 0, 0, 1}})));

  const Batch lm = collate(rows, 0, PadSide::kRight, false);
  EXPECT_TRUE(torch::equal(lm.loss_mask, torch::tensor({{0, 1, 1, 1, 1}, {0, 1, 0, 0, 0}})));
  EXPECT_THROW(collate({}, 0), core::InvalidArgument);
}

TEST(Collate, TokenizeTruncatesPromptLeftAndResponseRight) {
  const auto tok = make_byte_tokenizer();
  TokenizerConfig tc;
  tc.set_add_eos(true);
  DataConfig dc;
  dc.set_max_prompt_length(3);
  dc.set_max_length(5);
  const TokenizedPair p = tokenize_pair(*tok, "abcdef", "xyz", tc, dc);
  EXPECT_EQ(p.prompt, (std::vector<int64_t>{'d', 'e', 'f'}));
  EXPECT_EQ(p.response, (std::vector<int64_t>{'x', 'y'}));
  dc.set_max_length(10);
  EXPECT_EQ(tokenize_pair(*tok, "a", "b", tc, dc).response,
            (std::vector<int64_t>{'b', tok->eos_id()}));
}

}  // namespace
}  // namespace rudder::data
