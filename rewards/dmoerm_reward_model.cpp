#include "rewards/dmoerm_reward_model.h"

#include <filesystem>

#include <torch/torch.h>

#include "core/error.h"
#include "models/hf_io.h"
#include "models/safetensors.h"
#include "rewards/detail/reward_dir.h"
#include "rewards/detail/text_batch.h"

namespace rudder::rewards {
namespace {

namespace fs = std::filesystem;

// Every parameter but the shared base's.
models::TensorMap head_tensors(const DmoermNet& net) {
  models::TensorMap out;
  for (const auto& item : net.named_parameters(true)) {
    if (item.key().rfind("base.", 0) != 0) out.emplace(item.key(), item.value());
  }
  return out;
}

// Evaluation mode without gradients for one scope.
struct Inference {
  explicit Inference(torch::nn::Module& m) : module(m), was_training(m.is_training()) { m.eval(); }
  ~Inference() { module.train(was_training); }
  torch::nn::Module& module;
  bool was_training;
  torch::NoGradGuard no_grad;
};

}  // namespace

data::Batch prompt_batch(const data::Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                         const TokenizerConfig& tokenizer_config, const DataConfig& data_config) {
  std::vector<data::TokenizedPair> rows;
  for (const auto& p : prompts) {
    auto row = data::tokenize_pair(tokenizer, p, "", tokenizer_config, data_config);
    row.response.clear();
    rows.push_back(std::move(row));
  }
  return data::collate(rows, tokenizer.pad_id());
}

DmoermRewardModel::DmoermRewardModel(std::shared_ptr<DmoermNet> net,
                                     std::shared_ptr<data::Tokenizer> tokenizer,
                                     TokenizerConfig tokenizer_config, DataConfig data_config)
    : net_(std::move(net)),
      tokenizer_(std::move(tokenizer)),
      tokenizer_config_(std::move(tokenizer_config)),
      data_config_(std::move(data_config)) {}

std::vector<size_t> DmoermRewardModel::route(const std::vector<std::string>& prompts) {
  Inference scope(*net_);
  std::vector<size_t> out;
  for (size_t start = 0; start < prompts.size(); start += 32) {
    const std::vector<std::string> part(prompts.begin() + start,
                                        prompts.begin() + std::min(prompts.size(), start + 32));
    const at::Tensor best =
        net_->route_logits(prompt_batch(*tokenizer_, part, tokenizer_config_, data_config_))
            .argmax(1)
            .cpu();
    for (int64_t i = 0; i < best.size(0); ++i) out.push_back(best[i].item<int64_t>());
  }
  return out;
}

std::vector<double> DmoermRewardModel::score(const std::vector<std::string>& prompts,
                                             const std::vector<std::string>& responses) {
  std::vector<double> out;
  for (const auto& d : score_detailed(prompts, responses, {})) out.push_back(d.reward);
  return out;
}

std::vector<ScoreDetail> DmoermRewardModel::score_detailed(
    const std::vector<std::string>& prompts, const std::vector<std::string>& responses,
    const ScoreOptions& options) {
  detail::check_same_length(prompts, responses);
  check_score_options(options, capabilities(), version());
  const std::vector<size_t> routed = route(prompts);
  Inference scope(*net_);
  const auto& layout = net_->layout();
  std::vector<ScoreDetail> out(prompts.size());
  for (size_t c = 0; c < layout.categories.size(); ++c) {
    std::vector<std::string> p, r;
    std::vector<size_t> rows;
    for (size_t i = 0; i < prompts.size(); ++i) {
      if (routed[i] != c) continue;
      p.push_back(prompts[i]);
      r.push_back(responses[i]);
      rows.push_back(i);
    }
    if (rows.empty()) continue;
    const data::Batch b =
        detail::text_batch(*tokenizer_, p, r, 0, p.size(), tokenizer_config_, data_config_);
    std::vector<at::Tensor> hidden, dims;
    for (size_t k = 0; k < layout.dimensions.size(); ++k) {
      hidden.push_back(net_->expert_hidden(c, k, b));
      dims.push_back(net_->expert_scores(c, k, hidden.back()).to(torch::kDouble).cpu());
    }
    const at::Tensor reward =
        net_->aggregate(c, torch::stack(hidden, 1)).to(torch::kDouble).cpu();  // [n]
    for (size_t j = 0; j < rows.size(); ++j) {
      ScoreDetail& d = out[rows[j]];
      d.reward = reward[static_cast<int64_t>(j)].item<double>();
      d.category = layout.categories[c];
      for (size_t k = 0; options.dimension_scores && k < layout.dimensions.size(); ++k)
        d.dimension_scores[layout.dimensions[k]] = dims[k][static_cast<int64_t>(j)].item<double>();
    }
  }
  return out;
}

ScoreCapabilities DmoermRewardModel::capabilities() const {
  ScoreCapabilities c;
  c.dimensions = net_->layout().dimensions;
  return c;
}

void DmoermRewardModel::save(const std::string& dir) const {
  models::save_hf_model(net_->base(), dir);
  models::save_safetensors((fs::path(dir) / "dmoerm.safetensors").string(), head_tensors(*net_));
  const auto& layout = net_->layout();
  detail::write_reward_config(dir, {{"kind", "dmoerm"},
                                    {"categories", layout.categories},
                                    {"dimensions", layout.dimensions},
                                    {"expert_rank", net_->config().expert_rank()},
                                    {"expert_alpha", net_->config().expert_alpha()}});
}

std::unique_ptr<DmoermRewardModel> load_dmoerm_reward_model(
    const std::string& dir, std::shared_ptr<data::Tokenizer> tokenizer,
    const TokenizerConfig& tokenizer_config, const DataConfig& data_config) {
  const auto c = detail::read_reward_config(dir, "dmoerm");
  DmoermLayout layout;
  DmoermConfig config;
  try {
    layout.categories = c.at("categories").get<std::vector<std::string>>();
    layout.dimensions = c.at("dimensions").get<std::vector<std::string>>();
    config.set_expert_rank(c.at("expert_rank").get<uint32_t>());
    config.set_expert_alpha(c.at("expert_alpha").get<double>());
  } catch (const nlohmann::json::exception& e) {
    throw core::InvalidArgument(core::str(dir, "/reward_config.json: ", e.what()));
  }
  auto net = std::make_shared<DmoermNet>(models::load_hf_model(dir), layout, config);
  const std::string path = (fs::path(dir) / "dmoerm.safetensors").string();
  const auto stored = models::load_safetensors(path).tensors;
  torch::NoGradGuard no_grad;
  for (auto& [name, param] : head_tensors(*net)) {
    const auto it = stored.find(name);
    RUDDER_CHECK(it != stored.end(), path, ": missing tensor '", name, "'");
    RUDDER_CHECK(it->second.sizes() == param.sizes(), path, ": tensor '", name, "' has shape ",
                 it->second.sizes(), ", expected ", param.sizes());
    param.copy_(it->second);
  }
  return std::make_unique<DmoermRewardModel>(net, std::move(tokenizer), tokenizer_config,
                                             data_config);
}

int64_t DmoermRewardModel::count_tokens(const std::string& prompt,
                                        const std::string& response) const {
  return detail::pair_tokens(*tokenizer_, prompt, response, tokenizer_config_, data_config_);
}

std::vector<std::string> DmoermRewardModel::pad_and_eos_texts() const {
  return detail::pad_and_eos_texts(*tokenizer_);
}

}  // namespace rudder::rewards
