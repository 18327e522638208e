#include "algorithms/on_policy_source.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "core/error.h"
#include "data/collate.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "rewards/reward_model.h"
#include "rollout/generate.h"

namespace rudder::algorithms {

OnPolicySource::OnPolicySource(std::shared_ptr<models::CausalLM> policy,
                               std::shared_ptr<const data::Tokenizer> tokenizer,
                               std::vector<std::string> prompts,
                               std::shared_ptr<rewards::RewardModel> reward,
                               OnPolicyOptions options)
    : policy_(std::move(policy)),
      tokenizer_(std::move(tokenizer)),
      prompts_(std::move(prompts)),
      reward_(std::move(reward)),
      options_(std::move(options)),
      sampler_(prompts_.size(), options_.seed, options_.shuffle),
      generator_(at::make_generator<at::CPUGeneratorImpl>(options_.seed)) {
  RUDDER_CHECK(!prompts_.empty(), "an on-policy source needs prompts");
  RUDDER_CHECK(options_.samples_per_prompt >= 1, "samples_per_prompt must be at least 1");
  RUDDER_CHECK(policy_ && tokenizer_ && reward_, "an on-policy source needs a policy, a ",
               "tokenizer and a reward model");
}

void OnPolicySource::check_batching(uint64_t global_batch, uint64_t micro_batch,
                                    int world_size) const {
  const auto world = static_cast<uint64_t>(world_size);
  RUDDER_CHECK(global_batch % world == 0, "training.global_batch_size (", global_batch,
               " prompts) must be a multiple of the world size (", world_size, ")");
  const uint64_t samples = global_batch / world * options_.samples_per_prompt;
  RUDDER_CHECK(samples % micro_batch == 0, "each rank's ", samples, " samples (",
               global_batch / world, " prompts x ", options_.samples_per_prompt,
               ") must be a multiple of training.micro_batch_size (", micro_batch, ")");
}

void OnPolicySource::seed_for(int rank) {
  if (seeded_) return;
  std::lock_guard<std::mutex> lock(generator_.mutex());
  generator_.set_current_seed(options_.seed * 1000003ULL + static_cast<uint64_t>(rank) + 1);
  seeded_ = true;
}

Batch OnPolicySource::next(uint64_t global_batch, int rank, int world_size) {
  seed_for(rank);
  const std::vector<uint64_t> rows = rank_share(sampler_.next(global_batch), rank, world_size);
  auto r = std::make_shared<Rollouts>();
  std::vector<std::vector<int64_t>> ids;
  std::vector<std::string> prompt_texts;
  for (size_t g = 0; g < rows.size(); ++g) {
    const std::vector<int64_t> prompt =
        data::tokenize_pair(*tokenizer_, prompts_[rows[g]], "", options_.tokenizer, options_.data)
            .prompt;
    for (uint32_t s = 0; s < options_.samples_per_prompt; ++s) {
      ids.push_back(prompt);
      prompt_texts.push_back(prompts_[rows[g]]);
      r->groups.push_back(g);
      r->prompt_rows.push_back(rows[g]);
    }
  }
  const bool was_training = policy_->is_training();
  policy_->eval();
  const bool on_cpu = policy_->parameters().front().is_cpu();
  const auto completions = rollout::generate(
      *policy_, ids, options_.sampling, tokenizer_->eos_id(), tokenizer_->pad_id(),
      on_cpu ? c10::make_optional(generator_) : c10::nullopt);
  policy_->train(was_training);
  std::vector<std::string> texts;
  for (size_t i = 0; i < completions.size(); ++i) {
    const auto& c = completions[i];
    std::vector<int64_t> text_ids = c.tokens;
    if (c.finished_by_eos) text_ids.pop_back();
    texts.push_back(tokenizer_->decode(text_ids));
    r->prompts.push_back(std::move(ids[i]));
    r->responses.push_back(c.tokens);
    r->logprobs.push_back(c.logprobs);
    r->finished.push_back(c.finished_by_eos);
  }
  r->rewards = reward_->score(prompt_texts, texts);
  RUDDER_CHECK(r->rewards.size() == texts.size(), "the reward model returned ", r->rewards.size(),
               " rewards for ", texts.size(), " samples");
  Batch b;
  b.rollouts = std::move(r);
  return b;
}

models::TensorMap OnPolicySource::rank_state() const {
  std::lock_guard<std::mutex> lock(generator_.mutex());
  return {{"sampler", generator_.get_state()}};
}

void OnPolicySource::load_rank_state(const models::TensorMap& state, const std::string& source) {
  const auto it = state.find("sampler");
  RUDDER_CHECK(it != state.end(), source, ": no state of the on-policy sampler");
  std::lock_guard<std::mutex> lock(generator_.mutex());
  generator_.set_state(it->second);
  seeded_ = true;
}

}  // namespace rudder::algorithms
