#include "rollout/logits_processors.h"

#include <algorithm>
#include <limits>
#include <set>

#include <torch/torch.h>

namespace rudder::rollout {
namespace {

constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

at::Tensor column(const std::vector<double>& values, const at::Tensor& like) {
  return torch::tensor(values, torch::kDouble).to(like.options()).unsqueeze(1);  // [n, 1]
}

// Repetition penalty (Keskar et al. 2019, CTRL, sec. 4.1; HF's and vLLM's form): a token already
// in the prompt or the output has a positive logit divided by the penalty, a negative one
// multiplied.
void penalize_repeats(at::Tensor& scores, const std::vector<RowView>& rows) {
  for (size_t r = 0; r < rows.size(); ++r) {
    const double penalty = rows[r].params->repetition_penalty();
    if (penalty == 1.0) continue;
    std::set<int64_t> seen(rows[r].prompt->begin(), rows[r].prompt->end());
    seen.insert(rows[r].generated->begin(), rows[r].generated->end());
    const at::Tensor ids =
        torch::tensor(std::vector<int64_t>(seen.begin(), seen.end()), torch::kLong)
            .to(scores.device());
    at::Tensor row = scores[static_cast<int64_t>(r)];
    const at::Tensor values = row.index_select(0, ids);
    row.index_copy_(0, ids, torch::where(values > 0, values / penalty, values * penalty));
  }
}

// Before min_new_tokens, the tokens that would end a sample cannot be drawn (vLLM's rule).
void ban_early_stops(at::Tensor& scores, const std::vector<RowView>& rows, int64_t eos_id) {
  std::vector<int64_t> row_ids, token_ids;
  const int64_t vocab = scores.size(1);
  for (size_t r = 0; r < rows.size(); ++r) {
    const SamplingParams& p = *rows[r].params;
    if (rows[r].generated->size() >= p.min_new_tokens()) continue;
    auto ban = [&](int64_t token) {
      if (token < 0 || token >= vocab) return;
      row_ids.push_back(static_cast<int64_t>(r));
      token_ids.push_back(token);
    };
    if (!p.ignore_eos()) ban(eos_id);
    for (const uint32_t t : p.stop_token_ids()) ban(t);
  }
  if (row_ids.empty()) return;
  scores.index_put_(
      {torch::tensor(row_ids).to(scores.device()), torch::tensor(token_ids).to(scores.device())},
      torch::tensor(kMinusInf, scores.options()));
}

void apply_temperature(at::Tensor& scores, const std::vector<RowView>& rows) {
  std::vector<double> temps(rows.size());
  bool any = false;
  for (size_t r = 0; r < rows.size(); ++r) {
    temps[r] = samples_greedily(*rows[r].params) ? 1.0 : rows[r].params->temperature();
    any = any || temps[r] != 1.0;
  }
  if (any) scores.div_(column(temps, scores));
}

// Top-k (Fan et al. 2018): keep each row's k highest scores; k = 0 keeps all.
void apply_top_k(at::Tensor& scores, const std::vector<RowView>& rows) {
  const int64_t vocab = scores.size(1);
  std::vector<int64_t> ks(rows.size(), vocab);
  int64_t most = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    const int64_t k = rows[r].params->top_k();
    if (k > 0 && k < vocab) ks[r] = k;
    if (ks[r] < vocab) most = std::max(most, ks[r]);
  }
  if (most == 0) return;
  const at::Tensor top = std::get<0>(scores.topk(most, 1));  // [n, most], descending
  std::vector<int64_t> index(rows.size());
  std::vector<double> keep_all(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    index[r] = std::min(ks[r], most) - 1;
    keep_all[r] = ks[r] >= vocab ? 1.0 : 0.0;
  }
  const at::Tensor idx = torch::tensor(index).to(scores.device()).unsqueeze(1);
  at::Tensor kth = top.gather(1, idx);  // [n, 1]
  kth.masked_fill_(column(keep_all, scores) > 0, kMinusInf);
  scores.masked_fill_(scores < kth, kMinusInf);
}

// Nucleus sampling (Holtzman et al. 2020): keep the smallest set of most likely tokens whose
// mass reaches top_p; the most likely token always stays.
void apply_top_p(at::Tensor& scores, const std::vector<RowView>& rows) {
  std::vector<double> ps(rows.size());
  bool any = false;
  for (size_t r = 0; r < rows.size(); ++r) {
    const double p = rows[r].params->top_p();
    ps[r] = p < 1.0 ? p : std::numeric_limits<double>::infinity();
    any = any || p < 1.0;
  }
  if (!any) return;
  auto [sorted, order] = scores.sort(1, true);
  const at::Tensor probs = sorted.softmax(1);
  const at::Tensor before = probs.cumsum(1) - probs;  // mass of the more likely tokens
  at::Tensor drop = before >= column(ps, scores);
  drop.narrow(1, 0, 1).fill_(false);  // also where top_p rounds to 0 in float32
  sorted.masked_fill_(drop, kMinusInf);
  scores.scatter_(1, order, sorted);
}

// Min-p (Nguyen et al. 2024): drop tokens below min_p times the top token's probability.
void apply_min_p(at::Tensor& scores, const std::vector<RowView>& rows) {
  std::vector<double> mins(rows.size());
  bool any = false;
  for (size_t r = 0; r < rows.size(); ++r) {
    mins[r] = rows[r].params->min_p();
    any = any || mins[r] > 0;
  }
  if (!any) return;
  const at::Tensor probs = scores.softmax(1);
  const at::Tensor threshold = std::get<0>(probs.max(1, true)) * column(mins, scores);
  scores.masked_fill_(probs < threshold, kMinusInf);
}

}  // namespace

void apply_processors(at::Tensor& scores, const std::vector<RowView>& rows, int64_t eos_id,
                      const std::vector<std::shared_ptr<LogitsProcessor>>& guidance) {
  penalize_repeats(scores, rows);
  ban_early_stops(scores, rows, eos_id);
  for (const auto& processor : guidance) processor->process(scores, rows);
  apply_temperature(scores, rows);
  apply_top_k(scores, rows);
  apply_top_p(scores, rows);
  apply_min_p(scores, rows);
}

Choice choose_tokens(const at::Tensor& logits, const at::Tensor& scores,
                     const std::vector<RowView>& rows, std::vector<std::mt19937_64*>& generators) {
  const auto n = static_cast<int64_t>(rows.size());
  std::vector<double> temps(n), uniforms(n, 0.5);
  std::vector<uint8_t> greedy(n);
  bool any_greedy = false, any_sampled = false;
  for (int64_t r = 0; r < n; ++r) {
    greedy[r] = samples_greedily(*rows[r].params);
    temps[r] = greedy[r] ? 1.0 : rows[r].params->temperature();
    any_greedy = any_greedy || greedy[r];
    any_sampled = any_sampled || !greedy[r];
    // 53 random bits, shifted half a step so that u is never 0 and the draw never lands on a
    // token of zero probability.
    if (!greedy[r]) uniforms[r] = (static_cast<double>((*generators[r])() >> 11) + 0.5) * 0x1p-53;
  }
  const at::Tensor logp = scores.log_softmax(1);  // [n, V]
  at::Tensor ids;
  if (any_sampled) {
    const at::Tensor cdf = logp.exp().cumsum(1).to(torch::kDouble);
    const at::Tensor target = column(uniforms, cdf) * cdf.narrow(1, cdf.size(1) - 1, 1);
    ids = torch::searchsorted(cdf, target).squeeze(1).clamp_max(scores.size(1) - 1);
  }
  if (any_greedy) {
    const at::Tensor best = scores.argmax(1);
    ids = any_sampled
              ? torch::where(torch::tensor(greedy, torch::kBool).to(scores.device()), best, ids)
              : best;
  }
  const at::Tensor at_ids = ids.unsqueeze(1);
  const at::Tensor policy =
      (logits.to(torch::kFloat) / column(temps, scores)).log_softmax(1).gather(1, at_ids);
  at::Tensor sampled = logp.gather(1, at_ids);
  if (any_greedy)
    sampled.masked_fill_(column(std::vector<double>(greedy.begin(), greedy.end()), scores) > 0,
                         0.0f);
  // One transfer for everything the host needs (ids are exact in double).
  const at::Tensor host =
      torch::cat({at_ids.to(torch::kDouble), sampled.to(torch::kDouble), policy.to(torch::kDouble)},
                 1)
          .cpu();  // [n, 3]
  const auto acc = host.accessor<double, 2>();
  Choice out;
  for (int64_t r = 0; r < n; ++r) {
    out.tokens.push_back(static_cast<int64_t>(acc[r][0]));
    out.logprobs.push_back(static_cast<float>(acc[r][1]));
    out.policy_logprobs.push_back(static_cast<float>(acc[r][2]));
  }
  return out;
}

}  // namespace rudder::rollout
