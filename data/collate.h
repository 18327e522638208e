// Tokenized examples and padded batches.
//
// Label convention: loss_mask[b, t] = 1 when token t of row b is a response token; its
// log-probability comes from the logits at position t - 1 (see models/logprobs.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

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
};

/// Tokenizes `prompt` and `response`: BOS before the prompt and EOS after the response when the
/// config asks; the prompt keeps its last `max_prompt_length` tokens, then the response is cut
/// so the whole fits `max_length`.
TokenizedPair tokenize_pair(const Tokenizer& tokenizer, const std::string& prompt,
                            const std::string& response, const TokenizerConfig& tokenizer_config,
                            const DataConfig& data_config);

/// Which side padding goes on.
enum class PadSide { kRight, kLeft };

/// A padded batch; every tensor is [batch, seq] int64 on the CPU.
struct Batch {
  at::Tensor input_ids;       // prompt + response, padded with the pad id
  at::Tensor attention_mask;  // 1 real token, 0 padding
  at::Tensor loss_mask;       // 1 response token (a label), 0 prompt or padding
  at::Tensor position_ids;    // cumsum(attention_mask) - 1, 0 on padding
};

/// Pads `rows` to the longest one. With `mask_prompt` false, prompt tokens after the first are
/// labels too (plain language modeling).
Batch collate(const std::vector<TokenizedPair>& rows, int64_t pad_id,
              PadSide side = PadSide::kRight, bool mask_prompt = true);

}  // namespace rudder::data
