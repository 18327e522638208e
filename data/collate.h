// Tokenized examples and padded batches.
//
// Label convention: loss_mask[b, t] = 1 when token t of row b is a response token; its
// log-probability comes from the logits at position t - 1 (see models/logprobs.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "data/chat.h"
#include "data/tokenizer.h"

namespace rudder {
class TokenizerConfig;
class DataConfig;
}  // namespace rudder

namespace rudder::data {

/// A prompt and a response as token ids.
struct TokenizedPair {
  std::vector<int64_t> prompt;
  std::vector<int64_t> response;
  /// Empty, or one flag per prompt token: 1 where that token is learned though in the prompt
  /// (an earlier assistant turn of a conversation).
  std::vector<uint8_t> prompt_learned = {};
};

/// Tokenizes `prompt` and `response`: BOS before the prompt and EOS after the response when the
/// config asks; the prompt keeps its last `max_prompt_length` tokens (at most `max_length`),
/// then the response is cut so the whole fits `max_length`. With `learned` (ordered,
/// non-overlapping byte ranges of `prompt`), the prompt is tokenized piece by piece at their
/// bounds and their tokens are marked in `prompt_learned`.
TokenizedPair tokenize_pair(const Tokenizer& tokenizer, const std::string& prompt,
                            const std::string& response, const TokenizerConfig& tokenizer_config,
                            const DataConfig& data_config,
                            const std::vector<TextSpan>& learned = {});

/// Whether position `t` of `row` (prompt then response) is a label: a response token, a
/// learned prompt token, or, with `mask_prompt` false, any token; never the first, which nothing
/// predicts.
bool is_label(const TokenizedPair& row, size_t t, bool mask_prompt);

/// Which side padding goes on.
enum class PadSide { kRight, kLeft };

/// A padded batch; every tensor is [batch, seq] int64 on the CPU.
struct Batch {
  at::Tensor input_ids;       // prompt + response, padded with the pad id
  at::Tensor attention_mask;  // 1 real token, 0 padding
  at::Tensor loss_mask;       // 1 response token (a label), 0 prompt or padding
  at::Tensor position_ids;    // cumsum(attention_mask) - 1, 0 on padding; per example when packed
  at::Tensor segment_ids;     // packed batches only: which example of the row (-1 on padding)
};

/// Pads `rows` to the longest one. Labels as is_label(): with `mask_prompt` false, prompt tokens
/// after the first are labels too (plain language modeling).
Batch collate(const std::vector<TokenizedPair>& rows, int64_t pad_id,
              PadSide side = PadSide::kRight, bool mask_prompt = true);

/// Packs `rows` into as few rows of at most `max_length` tokens as first-fit in order allows
/// (each row is prompt + response of several examples back to back, padded on the right).
/// Positions restart at 0 for each example and segment_ids tell the examples apart, so a model
/// given them attends only within an example (block-diagonal attention): the loss equals the
/// unpacked one. Labels as collate(), example by example: an example's first token (position 0)
/// follows another example or nothing, and is never a label.
/// Throws InvalidArgument for an example longer than `max_length`.
Batch pack(const std::vector<TokenizedPair>& rows, int64_t pad_id, int64_t max_length,
           bool mask_prompt = true);

}  // namespace rudder::data
