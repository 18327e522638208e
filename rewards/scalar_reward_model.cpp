#include "rewards/scalar_reward_model.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/hf_io.h"
#include "models/safetensors.h"
#include "rewards/detail/text_batch.h"

namespace rudder::rewards {

namespace fs = std::filesystem;

ScalarRewardNet::ScalarRewardNet(std::shared_ptr<models::CausalLM> lm) : lm_(std::move(lm)) {
  register_module("lm", lm_);
  head_ = register_module("head", models::ScalarHead(lm_->spec().hidden_size));
  head_->to(lm_->parameters().front().device());
}

at::Tensor ScalarRewardNet::forward(const models::ForwardInput& input) {
  return head_->sequence_scores(lm_->final_hidden(input), input.attention_mask);
}

RewardNormalization normalization_of(const std::vector<double>& rewards, bool enabled) {
  RewardNormalization n;
  n.enabled = enabled;
  if (rewards.empty()) return n;
  double sum = 0;
  for (double r : rewards) sum += r;
  n.mean = sum / static_cast<double>(rewards.size());
  double sq = 0;
  for (double r : rewards) sq += (r - n.mean) * (r - n.mean);
  n.std = rewards.size() > 1
              ? std::max(1e-8, std::sqrt(sq / static_cast<double>(rewards.size() - 1)))
              : 1.0;
  return n;
}

ScalarRewardModel::ScalarRewardModel(std::shared_ptr<ScalarRewardNet> net,
                                     std::shared_ptr<data::Tokenizer> tokenizer,
                                     TokenizerConfig tokenizer_config, DataConfig data_config,
                                     RewardNormalization normalization)
    : net_(std::move(net)),
      tokenizer_(std::move(tokenizer)),
      tokenizer_config_(std::move(tokenizer_config)),
      data_config_(std::move(data_config)),
      normalization_(normalization) {}

std::vector<double> ScalarRewardModel::score(const std::vector<std::string>& prompts,
                                             const std::vector<std::string>& responses) {
  RUDDER_CHECK(prompts.size() == responses.size(), "score: ", prompts.size(), " prompts but ",
               responses.size(), " responses");
  torch::NoGradGuard no_grad;
  const bool was_training = net_->is_training();
  net_->eval();
  const auto device = net_->parameters().front().device();
  std::vector<double> out;
  for (size_t start = 0; start < prompts.size(); start += 32) {
    const data::Batch b =
        detail::text_batch(*tokenizer_, prompts, responses, start,
                           std::min(prompts.size(), start + 32), tokenizer_config_, data_config_);
    const at::Tensor r =
        net_->forward(models::batch_input(b.input_ids, b.attention_mask, b.position_ids, device))
            .to(torch::kDouble)
            .cpu();
    for (int64_t i = 0; i < r.size(0); ++i) {
      const double v = r[i].item<double>();
      out.push_back(normalization_.enabled ? (v - normalization_.mean) / normalization_.std : v);
    }
  }
  net_->train(was_training);
  return out;
}

int64_t ScalarRewardModel::count_tokens(const std::string& prompt,
                                        const std::string& response) const {
  return detail::pair_tokens(*tokenizer_, prompt, response, tokenizer_config_, data_config_);
}

void ScalarRewardModel::save(const std::string& dir) const {
  models::save_hf_model(net_->lm(), dir);
  models::save_safetensors(
      (fs::path(dir) / "reward_head.safetensors").string(),
      {{"score.weight", net_->head()->score->weight}, {"score.bias", net_->head()->score->bias}});
  nlohmann::json c = {{"kind", "scalar"},
                      {"normalize", normalization_.enabled},
                      {"mean", normalization_.mean},
                      {"std", normalization_.std}};
  const fs::path tmp = fs::path(dir) / "reward_config.json.tmp";
  {
    std::ofstream out(tmp);
    out << c.dump(2) << "\n";
    RUDDER_CHECK(out.good(), tmp.string(), ": write failed");
  }
  fs::rename(tmp, fs::path(dir) / "reward_config.json");
}

std::unique_ptr<ScalarRewardModel> load_scalar_reward_model(
    const std::string& dir, std::shared_ptr<data::Tokenizer> tokenizer,
    const TokenizerConfig& tokenizer_config, const DataConfig& data_config) {
  const fs::path config_path = fs::path(dir) / "reward_config.json";
  std::ifstream in(config_path);
  RUDDER_CHECK_T(core::NotFound, in.good(), config_path.string(),
                 ": cannot open (not a reward model directory?)");
  nlohmann::json c;
  try {
    c = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw core::InvalidArgument(core::str(config_path.string(), ": malformed JSON: ", e.what()));
  }
  RUDDER_CHECK(c.value("kind", "") == "scalar", config_path.string(), ": kind '",
               c.value("kind", ""), "' is not a scalar reward model");
  auto net = std::make_shared<ScalarRewardNet>(models::load_hf_model(dir));
  const std::string head_path = (fs::path(dir) / "reward_head.safetensors").string();
  const auto head = models::load_safetensors(head_path).tensors;
  torch::NoGradGuard no_grad;
  for (const char* name : {"score.weight", "score.bias"}) {
    RUDDER_CHECK(head.count(name), head_path, ": missing tensor '", name, "'");
  }
  RUDDER_CHECK(head.at("score.weight").sizes() == net->head()->score->weight.sizes(), head_path,
               ": score.weight has shape ", head.at("score.weight").sizes(), ", expected ",
               net->head()->score->weight.sizes());
  net->head()->score->weight.copy_(head.at("score.weight"));
  net->head()->score->bias.copy_(head.at("score.bias"));
  RewardNormalization n{c.value("normalize", false), c.value("mean", 0.0), c.value("std", 1.0)};
  return std::make_unique<ScalarRewardModel>(net, std::move(tokenizer), tokenizer_config,
                                             data_config, n);
}

std::vector<std::string> ScalarRewardModel::pad_and_eos_texts() const {
  return detail::pad_and_eos_texts(*tokenizer_);
}

}  // namespace rudder::rewards
