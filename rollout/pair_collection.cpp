#include "rollout/pair_collection.h"

#include <torch/torch.h>

#include "core/error.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "rewards/reward_model.h"
#include "rollout/generate.h"
#include "rollout/win_rate.h"

namespace rudder::rollout {
namespace {

// Decoded completions of one chunk of prompts, k per prompt (EOS dropped).
std::vector<std::string> sample_texts(models::CausalLM& model, const data::Tokenizer& tokenizer,
                                      const std::vector<std::string>& prompts, size_t begin,
                                      size_t end, const PairCollectionOptions& options,
                                      c10::optional<at::Generator> generator) {
  std::vector<std::vector<int64_t>> ids;
  for (size_t i = begin; i < end; ++i) {
    const std::vector<int64_t> prompt = tokenizer.encode(prompts[i]);
    for (uint32_t s = 0; s < options.samples_per_prompt; ++s) ids.push_back(prompt);
  }
  const auto completions =
      generate(model, ids, options.sampling, tokenizer.eos_id(), tokenizer.pad_id(), generator);
  std::vector<std::string> texts;
  for (const auto& c : completions) {
    std::vector<int64_t> tokens = c.tokens;
    if (c.finished_by_eos) tokens.pop_back();
    texts.push_back(tokenizer.decode(tokens));
  }
  return texts;
}

}  // namespace

std::vector<data::PreferencePair> collect_pairs(models::CausalLM& model,
                                                const data::Tokenizer& tokenizer,
                                                const std::vector<std::string>& prompts,
                                                const std::vector<std::string>& categories,
                                                rewards::RewardModel& reward,
                                                const PairCollectionOptions& options,
                                                c10::optional<at::Generator> generator) {
  RUDDER_CHECK(options.samples_per_prompt >= 2, "pair collection needs at least 2 samples per ",
               "prompt, got ", options.samples_per_prompt);
  RUDDER_CHECK(categories.empty() || categories.size() == prompts.size(),
               "pair collection: ", prompts.size(), " prompts but ", categories.size(),
               " categories");
  const size_t k = options.samples_per_prompt,
               chunk = std::max<size_t>(1, options.prompts_per_batch);
  std::vector<data::PreferencePair> pairs;
  const bool was_training = model.is_training();
  model.eval();
  for (size_t start = 0; start < prompts.size(); start += chunk) {
    const size_t end = std::min(prompts.size(), start + chunk);
    const std::vector<std::string> texts =
        sample_texts(model, tokenizer, prompts, start, end, options, generator);
    std::vector<std::string> repeated;
    for (size_t i = start; i < end; ++i) repeated.insert(repeated.end(), k, prompts[i]);
    const std::vector<double> all_scores = reward.score(repeated, texts);
    for (size_t i = start; i < end; ++i) {
      const size_t first = (i - start) * k;
      const std::vector<double> scores(all_scores.begin() + first, all_scores.begin() + first + k);
      const size_t best = best_of_n(scores), worst = best_of_n(scores, true);
      if (scores[best] == scores[worst] || texts[first + best].empty() ||
          texts[first + worst].empty())
        continue;
      pairs.push_back({prompts[i], texts[first + best], texts[first + worst],
                       scores[best] - scores[worst], categories.empty() ? "" : categories[i]});
    }
  }
  model.train(was_training);
  return pairs;
}

}  // namespace rudder::rollout
