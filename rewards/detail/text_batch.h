// Prompt/response strings as a padded batch, tokenized as in training.
#pragma once

#include <string>
#include <vector>

#include "data/collate.h"
#include "proto/rudder.pb.h"

namespace rudder::rewards::detail {

/// Rows [begin, end) of (prompts, responses), tokenized with `tokenizer` as data::tokenize_pair
/// does and right-padded into one batch (on the CPU).
data::Batch text_batch(const data::Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                       const std::vector<std::string>& responses, size_t begin, size_t end,
                       const TokenizerConfig& tokenizer_config, const DataConfig& data_config);

/// Tokens data::tokenize_pair gives (prompt, response) before cutting it to data.max_length:
/// BOS when configured, the prompt's last data.max_prompt_length tokens, the response and EOS
/// when configured.
int64_t pair_tokens(const data::Tokenizer& tokenizer, const std::string& prompt,
                    const std::string& response, const TokenizerConfig& tokenizer_config,
                    const DataConfig& data_config);

/// The distinct, non-empty texts of `tokenizer`'s padding and EOS tokens.
std::vector<std::string> pad_and_eos_texts(const data::Tokenizer& tokenizer);

/// Throws InvalidArgument when the lists differ in length.
void check_same_length(const std::vector<std::string>& prompts,
                       const std::vector<std::string>& responses);

}  // namespace rudder::rewards::detail
