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
  // A prompt limit above max_length: the prompt keeps its last max_length tokens, no response.
  dc.set_max_prompt_length(8);
  dc.set_max_length(4);
  const TokenizedPair cut = tokenize_pair(*tok, "abcdef", "xyz", tc, dc);
  EXPECT_EQ(cut.prompt, (std::vector<int64_t>{'c', 'd', 'e', 'f'}));
  EXPECT_TRUE(cut.response.empty());
}

// Learned ranges of a prompt (earlier assistant turns) are labels, through truncation from the
// left, in collate() and pack() alike; ranges out of order or outside the prompt are refused.
TEST(Collate, LearnedPromptRangesAreLabels) {
  const auto tok = make_byte_tokenizer();
  TokenizerConfig tc;
  tc.set_add_eos(false);
  DataConfig dc;
  dc.set_max_prompt_length(6);
  dc.set_max_length(20);
  const TokenizedPair p = tokenize_pair(*tok, "xxABcyy", "z", tc, dc, {{2, 4}, {5, 5}});
  EXPECT_EQ(p.prompt, (std::vector<int64_t>{'x', 'A', 'B', 'c', 'y', 'y'}));
  EXPECT_EQ(p.prompt_learned, (std::vector<uint8_t>{0, 1, 1, 0, 0, 0}));
  EXPECT_TRUE(tokenize_pair(*tok, "xxABcyy", "z", tc, dc).prompt_learned.empty());
  const TokenizedPair plain{{'q'}, {'r'}, {}};
  const Batch b = collate({p, plain}, 0);
  EXPECT_TRUE(
      torch::equal(b.loss_mask, torch::tensor({{0, 1, 1, 0, 0, 0, 1}, {0, 1, 0, 0, 0, 0, 0}})));
  EXPECT_TRUE(
      torch::equal(pack({p, plain}, 0, 9).loss_mask, torch::tensor({{0, 1, 1, 0, 0, 0, 1, 0, 1}})));
  EXPECT_TRUE(torch::equal(collate({p}, 0, PadSide::kRight, false).loss_mask,
                           torch::tensor({{0, 1, 1, 1, 1, 1, 1}})));
  // The BOS before a learned first piece is not learned; a learned token truncated into the
  // first position is no label (nothing predicts it), and the units count it as such.
  tc.set_add_bos(true);
  const TokenizedPair bos = tokenize_pair(*tok, "ABc", "z", tc, dc, {{0, 2}});
  EXPECT_EQ(bos.prompt, (std::vector<int64_t>{*tok->bos_id(), 'A', 'B', 'c'}));
  EXPECT_EQ(bos.prompt_learned, (std::vector<uint8_t>{0, 1, 1, 0}));
  tc.set_add_bos(false);
  dc.set_max_prompt_length(2);
  const TokenizedPair first = tokenize_pair(*tok, "xAB", "z", tc, dc, {{1, 3}});
  EXPECT_EQ(first.prompt_learned, (std::vector<uint8_t>{1, 1}));
  EXPECT_TRUE(torch::equal(collate({first}, 0).loss_mask, torch::tensor({{0, 1, 1}})));
  EXPECT_FALSE(is_label(first, 0, true));
  EXPECT_THROW(tokenize_pair(*tok, "abc", "z", tc, dc, {{2, 1}}), core::InvalidArgument);
  EXPECT_THROW(tokenize_pair(*tok, "abc", "z", tc, dc, {{1, 2}, {0, 3}}), core::InvalidArgument);
  EXPECT_THROW(tokenize_pair(*tok, "abc", "z", tc, dc, {{1, 4}}), core::InvalidArgument);
}

TEST(Pack, FirstFitRowsWithPositionsAndSegmentsPerExample) {
  // Lengths 3, 2, 4, 1 into rows of 5: [0, 1], [2, 3].
  const std::vector<TokenizedPair> rows = {{{1}, {2, 3}}, {{4}, {5}}, {{6, 7}, {8, 9}}, {{}, {10}}};
  const Batch b = pack(rows, 0, 5);
  EXPECT_TRUE(torch::equal(b.input_ids, torch::tensor({{1, 2, 3, 4, 5}, {6, 7, 8, 9, 10}})));
  EXPECT_TRUE(torch::equal(b.attention_mask, torch::ones({2, 5}, torch::kLong)));
  EXPECT_TRUE(torch::equal(b.position_ids, torch::tensor({{0, 1, 2, 0, 1}, {0, 1, 2, 3, 0}})));
  EXPECT_TRUE(torch::equal(b.segment_ids, torch::tensor({{0, 0, 0, 1, 1}, {0, 0, 0, 0, 1}})));
  // Labels as collate() gives them example by example: never an example's first token, which
  // nothing predicts (here the empty prompt's first response token).
  EXPECT_TRUE(torch::equal(b.loss_mask, torch::tensor({{0, 1, 1, 0, 1}, {0, 0, 1, 1, 0}})));
  const Batch lm = pack(rows, 0, 5, false);
  EXPECT_TRUE(torch::equal(lm.loss_mask, torch::tensor({{0, 1, 1, 0, 1}, {0, 1, 1, 1, 0}})));
  EXPECT_TRUE(torch::equal(collate({rows[3]}, 0).loss_mask, torch::tensor({{0}})));
}

TEST(Pack, LaterExamplesFillEarlierRowsAndPaddingIsMarked) {
  // Lengths 4, 3, 1 into rows of 5: the third example goes back to the first row.
  const std::vector<TokenizedPair> rows = {{{1, 2}, {3, 4}}, {{5}, {6, 7}}, {{8}, {}}};
  const Batch b = pack(rows, 9, 5);
  EXPECT_TRUE(torch::equal(b.input_ids, torch::tensor({{1, 2, 3, 4, 8}, {5, 6, 7, 9, 9}})));
  EXPECT_TRUE(torch::equal(b.attention_mask, torch::tensor({{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}})));
  EXPECT_TRUE(torch::equal(b.segment_ids, torch::tensor({{0, 0, 0, 0, 1}, {0, 0, 0, -1, -1}})));
  EXPECT_TRUE(torch::equal(b.position_ids, torch::tensor({{0, 1, 2, 3, 0}, {0, 1, 2, 0, 0}})));
}

TEST(Pack, RefusesAnExampleLongerThanARow) {
  try {
    pack({{{1, 2, 3}, {4, 5, 6}}}, 0, 4);
    FAIL() << "expected a refusal";
  } catch (const core::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("an example of 6 tokens into rows of max_length 4"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(pack({}, 0, 4), core::InvalidArgument);
}

}  // namespace
}  // namespace rudder::data
