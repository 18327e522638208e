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

/// Throws InvalidArgument when the lists differ in length.
void check_same_length(const std::vector<std::string>& prompts,
                       const std::vector<std::string>& responses);

}  // namespace rudder::rewards::detail
