#include "rewards/detail/text_batch.h"

#include "core/error.h"

namespace rudder::rewards::detail {

data::Batch text_batch(const data::Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                       const std::vector<std::string>& responses, size_t begin, size_t end,
                       const TokenizerConfig& tokenizer_config, const DataConfig& data_config) {
  std::vector<data::TokenizedPair> rows;
  rows.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) {
    rows.push_back(
        data::tokenize_pair(tokenizer, prompts[i], responses[i], tokenizer_config, data_config));
  }
  return data::collate(rows, tokenizer.pad_id());
}

void check_same_length(const std::vector<std::string>& prompts,
                       const std::vector<std::string>& responses) {
  RUDDER_CHECK(prompts.size() == responses.size(), "score: ", prompts.size(), " prompts but ",
               responses.size(), " responses");
}

}  // namespace rudder::rewards::detail
