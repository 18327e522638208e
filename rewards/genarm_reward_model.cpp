#include "rewards/genarm_reward_model.h"

#include <torch/torch.h>

#include "core/error.h"
#include "models/chunked_logprobs.h"
#include "models/hf_io.h"
#include "rewards/detail/reward_dir.h"
#include "rewards/detail/text_batch.h"

namespace rudder::rewards {

at::Tensor arm_token_rewards(models::CausalLM& arm, const data::Batch& batch, double beta_r) {
  const auto device = arm.parameters().front().device();
  const at::Tensor mask = batch.loss_mask.to(device);
  const at::Tensor logp =
      models::score_tokens(
          arm,
          models::batch_input(batch.input_ids, batch.attention_mask, batch.position_ids, device),
          mask)
          .logprobs;
  return logp * beta_r;  // [batch, seq], 0 outside the mask
}

GenArmRewardModel::GenArmRewardModel(std::shared_ptr<models::CausalLM> arm,
                                     std::shared_ptr<data::Tokenizer> tokenizer,
                                     TokenizerConfig tokenizer_config, DataConfig data_config,
                                     double beta_r)
    : arm_(std::move(arm)),
      tokenizer_(std::move(tokenizer)),
      tokenizer_config_(std::move(tokenizer_config)),
      data_config_(std::move(data_config)),
      beta_r_(beta_r) {
  RUDDER_CHECK(beta_r_ > 0, "GenARM beta_r must be > 0, got ", beta_r_);
}

std::vector<double> GenArmRewardModel::score(const std::vector<std::string>& prompts,
                                             const std::vector<std::string>& responses) {
  std::vector<double> out;
  for (const auto& d : score_detailed(prompts, responses, {})) out.push_back(d.reward);
  return out;
}

std::vector<ScoreDetail> GenArmRewardModel::score_detailed(
    const std::vector<std::string>& prompts, const std::vector<std::string>& responses,
    const ScoreOptions& options) {
  detail::check_same_length(prompts, responses);
  check_score_options(options, capabilities(), version());
  torch::NoGradGuard no_grad;
  const bool was_training = arm_->is_training();
  arm_->eval();
  std::vector<ScoreDetail> out;
  for (size_t start = 0; start < prompts.size(); start += 32) {
    const size_t end = std::min(prompts.size(), start + 32);
    const data::Batch b = detail::text_batch(*tokenizer_, prompts, responses, start, end,
                                             tokenizer_config_, data_config_);
    const at::Tensor r = arm_token_rewards(*arm_, b, beta_r_).to(torch::kDouble).cpu();
    const at::Tensor mask = b.loss_mask;
    const bool bos = tokenizer_config_.add_bos() && tokenizer_->bos_id();
    for (int64_t i = 0; i < r.size(0); ++i) {
      ScoreDetail d;
      d.reward = r[i].sum().item<double>();
      if (options.token_rewards) {
        // A response with nothing before it starts at position 0, which no label holds:
        // its first token's reward (0: nothing predicts it) is given too, one per token.
        if (prompts[start + static_cast<size_t>(i)].empty() && !bos)
          d.token_rewards.push_back(r[i][0].item<double>());
        const at::Tensor row = r[i].masked_select(mask[i].to(torch::kBool)).contiguous();
        d.token_rewards.insert(d.token_rewards.end(), row.data_ptr<double>(),
                               row.data_ptr<double>() + row.numel());
      }
      out.push_back(std::move(d));
    }
  }
  arm_->train(was_training);
  return out;
}

ScoreCapabilities GenArmRewardModel::capabilities() const {
  ScoreCapabilities c;
  c.token_rewards = true;
  return c;
}

void GenArmRewardModel::save(const std::string& dir) const {
  models::save_hf_model(*arm_, dir);
  detail::write_reward_config(dir, {{"kind", "genarm"}, {"beta_r", beta_r_}});
}

std::unique_ptr<GenArmRewardModel> load_genarm_reward_model(
    const std::string& dir, std::shared_ptr<data::Tokenizer> tokenizer,
    const TokenizerConfig& tokenizer_config, const DataConfig& data_config) {
  const auto c = detail::read_reward_config(dir, "genarm");
  RUDDER_CHECK(c.contains("beta_r") && c.at("beta_r").is_number(), dir,
               "/reward_config.json: no number \"beta_r\"");
  return std::make_unique<GenArmRewardModel>(models::load_hf_model(dir), std::move(tokenizer),
                                             tokenizer_config, data_config,
                                             c.at("beta_r").get<double>());
}

int64_t GenArmRewardModel::count_tokens(const std::string& prompt,
                                        const std::string& response) const {
  return detail::pair_tokens(*tokenizer_, prompt, response, tokenizer_config_, data_config_);
}

std::vector<std::string> GenArmRewardModel::pad_and_eos_texts() const {
  return detail::pad_and_eos_texts(*tokenizer_);
}

}  // namespace rudder::rewards
