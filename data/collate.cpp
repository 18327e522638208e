#include "data/collate.h"

#include <torch/torch.h>

#include "core/error.h"
#include "proto/rudder.pb.h"

namespace rudder::data {

TokenizedPair tokenize_pair(const Tokenizer& tokenizer, const std::string& prompt,
                            const std::string& response, const TokenizerConfig& tc,
                            const DataConfig& dc) {
  TokenizedPair out;
  if (tc.add_bos() && tokenizer.bos_id()) out.prompt.push_back(*tokenizer.bos_id());
  const auto p = tokenizer.encode(prompt);
  out.prompt.insert(out.prompt.end(), p.begin(), p.end());
  out.response = tokenizer.encode(response);
  if (tc.add_eos()) out.response.push_back(tokenizer.eos_id());
  const size_t max_prompt = dc.max_prompt_length();
  if (out.prompt.size() > max_prompt)
    out.prompt.erase(out.prompt.begin(), out.prompt.end() - max_prompt);
  const size_t room = dc.max_length() > out.prompt.size() ? dc.max_length() - out.prompt.size() : 0;
  if (out.response.size() > room) out.response.resize(room);
  return out;
}

Batch collate(const std::vector<TokenizedPair>& rows, int64_t pad_id, PadSide side,
              bool mask_prompt) {
  RUDDER_CHECK(!rows.empty(), "cannot collate an empty batch");
  size_t longest = 0;
  for (const auto& r : rows) longest = std::max(longest, r.prompt.size() + r.response.size());
  RUDDER_CHECK(longest > 0, "every row of the batch is empty");
  const auto B = static_cast<int64_t>(rows.size());
  const auto T = static_cast<int64_t>(longest);
  Batch b;
  b.input_ids = torch::full({B, T}, pad_id, torch::kLong);
  b.attention_mask = torch::zeros({B, T}, torch::kLong);
  b.loss_mask = torch::zeros({B, T}, torch::kLong);
  auto ids = b.input_ids.accessor<int64_t, 2>();
  auto mask = b.attention_mask.accessor<int64_t, 2>();
  auto labels = b.loss_mask.accessor<int64_t, 2>();
  for (int64_t i = 0; i < B; ++i) {
    const auto& r = rows[i];
    const auto len = static_cast<int64_t>(r.prompt.size() + r.response.size());
    const int64_t start = side == PadSide::kRight ? 0 : T - len;
    for (int64_t t = 0; t < len; ++t) {
      const bool in_prompt = t < static_cast<int64_t>(r.prompt.size());
      ids[i][start + t] = in_prompt ? r.prompt[t] : r.response[t - r.prompt.size()];
      mask[i][start + t] = 1;
      labels[i][start + t] = (!in_prompt || (!mask_prompt && t > 0)) ? 1 : 0;
    }
  }
  b.position_ids = (b.attention_mask.cumsum(1) - 1).clamp_min(0);
  return b;
}

}  // namespace rudder::data
