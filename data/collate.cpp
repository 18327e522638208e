#include "data/collate.h"

#include <torch/torch.h>

#include "core/error.h"
#include "proto/rudder.pb.h"

namespace rudder::data {

TokenizedPair tokenize_pair(const Tokenizer& tokenizer, const std::string& prompt,
                            const std::string& response, const TokenizerConfig& tc,
                            const DataConfig& dc, const std::vector<TextSpan>& learned) {
  TokenizedPair out;
  if (tc.add_bos() && tokenizer.bos_id()) out.prompt.push_back(*tokenizer.bos_id());
  if (!learned.empty()) out.prompt_learned.assign(out.prompt.size(), 0);  // the BOS
  const auto append = [&](size_t begin, size_t end, uint8_t flag) {
    if (begin >= end) return;
    const auto ids = tokenizer.encode(prompt.substr(begin, end - begin));
    out.prompt.insert(out.prompt.end(), ids.begin(), ids.end());
    if (!learned.empty()) out.prompt_learned.resize(out.prompt.size(), flag);
  };
  size_t at = 0;
  for (const auto& [begin, end] : learned) {
    RUDDER_CHECK(at <= begin && begin <= end && end <= prompt.size(), "learned range [", begin,
                 ", ", end, ") is out of order or outside a prompt of ", prompt.size(), " bytes");
    append(at, begin, 0);
    append(begin, end, 1);
    at = end;
  }
  append(at, prompt.size(), 0);
  out.response = tokenizer.encode(response);
  if (tc.add_eos()) out.response.push_back(tokenizer.eos_id());
  // The whole pair fits max_length even where max_prompt_length does not.
  const size_t max_prompt = std::min(dc.max_prompt_length(), dc.max_length());
  if (out.prompt.size() > max_prompt) {
    const size_t cut = out.prompt.size() - max_prompt;
    out.prompt.erase(out.prompt.begin(), out.prompt.begin() + cut);
    if (!out.prompt_learned.empty())
      out.prompt_learned.erase(out.prompt_learned.begin(), out.prompt_learned.begin() + cut);
  }
  const size_t room = dc.max_length() > out.prompt.size() ? dc.max_length() - out.prompt.size() : 0;
  if (out.response.size() > room) out.response.resize(room);
  return out;
}

bool is_label(const TokenizedPair& row, size_t t, bool mask_prompt) {
  if (t == 0) return false;  // nothing precedes it to predict it
  if (t >= row.prompt.size() || !mask_prompt) return true;
  return !row.prompt_learned.empty() && row.prompt_learned[t] != 0;
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
      labels[i][start + t] = is_label(r, static_cast<size_t>(t), mask_prompt) ? 1 : 0;
    }
  }
  b.position_ids = (b.attention_mask.cumsum(1) - 1).clamp_min(0);
  return b;
}

namespace {

// First-fit in order: bins[k] lists the examples of packed row k.
std::vector<std::vector<size_t>> first_fit(const std::vector<TokenizedPair>& rows,
                                           int64_t max_length) {
  std::vector<std::vector<size_t>> bins;
  std::vector<int64_t> used;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto len = static_cast<int64_t>(rows[i].prompt.size() + rows[i].response.size());
    RUDDER_CHECK(len <= max_length, "cannot pack an example of ", len,
                 " tokens into rows of max_length ", max_length);
    size_t k = 0;
    while (k < bins.size() && used[k] + len > max_length) ++k;
    if (k == bins.size()) {
      bins.emplace_back();
      used.push_back(0);
    }
    bins[k].push_back(i);
    used[k] += len;
  }
  return bins;
}

}  // namespace

Batch pack(const std::vector<TokenizedPair>& rows, int64_t pad_id, int64_t max_length,
           bool mask_prompt) {
  RUDDER_CHECK(!rows.empty(), "cannot pack an empty batch");
  RUDDER_CHECK(max_length > 0, "max_length must be positive, got ", max_length);
  const auto bins = first_fit(rows, max_length);
  int64_t longest = 0;
  for (const auto& bin : bins) {
    int64_t len = 0;
    for (size_t i : bin)
      len += static_cast<int64_t>(rows[i].prompt.size() + rows[i].response.size());
    longest = std::max(longest, len);
  }
  RUDDER_CHECK(longest > 0, "every row of the batch is empty");
  const auto B = static_cast<int64_t>(bins.size());
  Batch b;
  b.input_ids = torch::full({B, longest}, pad_id, torch::kLong);
  b.attention_mask = torch::zeros({B, longest}, torch::kLong);
  b.loss_mask = torch::zeros({B, longest}, torch::kLong);
  b.position_ids = torch::zeros({B, longest}, torch::kLong);
  b.segment_ids = torch::full({B, longest}, -1, torch::kLong);
  auto ids = b.input_ids.accessor<int64_t, 2>();
  auto mask = b.attention_mask.accessor<int64_t, 2>();
  auto labels = b.loss_mask.accessor<int64_t, 2>();
  auto positions = b.position_ids.accessor<int64_t, 2>();
  auto segments = b.segment_ids.accessor<int64_t, 2>();
  for (int64_t row = 0; row < B; ++row) {
    int64_t at = 0;
    for (size_t s = 0; s < bins[row].size(); ++s) {
      const auto& r = rows[bins[row][s]];
      const auto len = static_cast<int64_t>(r.prompt.size() + r.response.size());
      for (int64_t t = 0; t < len; ++t, ++at) {
        const bool in_prompt = t < static_cast<int64_t>(r.prompt.size());
        ids[row][at] = in_prompt ? r.prompt[t] : r.response[t - r.prompt.size()];
        mask[row][at] = 1;
        labels[row][at] = is_label(r, static_cast<size_t>(t), mask_prompt) ? 1 : 0;
        positions[row][at] = t;
        segments[row][at] = static_cast<int64_t>(s);
      }
    }
  }
  return b;
}

}  // namespace rudder::data
