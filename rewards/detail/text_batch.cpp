#include "rewards/detail/text_batch.h"

#include <algorithm>

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

int64_t pair_tokens(const data::Tokenizer& tokenizer, const std::string& prompt,
                    const std::string& response, const TokenizerConfig& tokenizer_config,
                    const DataConfig& data_config) {
  const bool bos = tokenizer_config.add_bos() && tokenizer.bos_id();
  const auto prompt_tokens = static_cast<int64_t>(tokenizer.encode(prompt).size()) + bos;
  const auto response_tokens =
      static_cast<int64_t>(tokenizer.encode(response).size()) + tokenizer_config.add_eos();
  return std::min<int64_t>(prompt_tokens, data_config.max_prompt_length()) + response_tokens;
}

std::vector<std::string> pad_and_eos_texts(const data::Tokenizer& tokenizer) {
  std::vector<std::string> out;
  for (const int64_t id : {tokenizer.pad_id(), tokenizer.eos_id()}) {
    std::string text = tokenizer.decode({id});
    if (!text.empty() && std::find(out.begin(), out.end(), text) == out.end())
      out.push_back(std::move(text));
  }
  return out;
}

}  // namespace rudder::rewards::detail
