#include "rollout/best_of_n.h"

#include "core/error.h"
#include "data/tokenizer.h"
#include "rewards/reward_model.h"
#include "rollout/win_rate.h"

namespace rudder::rollout {
namespace {

std::string sample_text(const Sample& s, const data::Tokenizer& tokenizer) {
  // A stop string at the very start leaves empty text on purpose.
  if (!s.text.empty() || s.tokens.empty() || s.finish_reason == FinishReason::kStop) return s.text;
  std::vector<int64_t> ids = s.tokens;
  if (s.finish_reason == FinishReason::kEos) ids.pop_back();
  return tokenizer.decode(ids);
}

}  // namespace

std::vector<BestOfN> best_of_n_decode(RolloutEngine& engine, rewards::RewardModel& reward,
                                      const std::vector<GenerateInput>& requests,
                                      const data::Tokenizer& tokenizer, bool worst) {
  for (size_t i = 0; i < requests.size(); ++i) {
    RUDDER_CHECK(requests[i].n >= 1, "best-of-N request ", i, ": n must be at least 1");
  }
  std::vector<GenerateOutput> outputs = engine.generate(requests);
  std::vector<std::string> prompts, responses;
  for (size_t i = 0; i < requests.size(); ++i) {
    const std::string prompt = requests[i].prompt_text.empty()
                                   ? tokenizer.decode(requests[i].prompt)
                                   : requests[i].prompt_text;
    for (const Sample& s : outputs[i].samples) {
      prompts.push_back(prompt);
      responses.push_back(sample_text(s, tokenizer));
    }
  }
  const std::vector<double> scores = reward.score(prompts, responses);
  RUDDER_CHECK(scores.size() == responses.size(), "the reward model returned ", scores.size(),
               " rewards for ", responses.size(), " samples");
  std::vector<BestOfN> out;
  size_t at = 0;
  for (auto& o : outputs) {
    BestOfN b;
    b.scores.assign(scores.begin() + at, scores.begin() + at + o.samples.size());
    at += o.samples.size();
    b.chosen = rollout::best_of_n(b.scores, worst);
    b.samples = std::move(o.samples);
    b.policy_version = o.policy_version;
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace rudder::rollout
