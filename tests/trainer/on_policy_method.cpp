#include "tests/trainer/on_policy_method.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "algorithms/on_policy_source.h"
#include "core/error.h"
#include "data/collate.h"
#include "data/synthetic.h"
#include "models/factory.h"
#include "models/hf_io.h"
#include "models/logprobs.h"
#include "rewards/task_reward.h"

namespace rudder::testing {
namespace {

constexpr uint64_t kEpochs = 2, kMiniBatches = 2;

class Reinforce : public algorithms::Algorithm {
 public:
  Reinforce(std::shared_ptr<models::CausalLM> policy, int64_t pad_id, uint64_t seed)
      : policy_(std::move(policy)),
        reference_(std::make_shared<models::CausalLM>(policy_->spec())),
        pad_id_(pad_id),
        shuffle_(at::make_generator<at::CPUGeneratorImpl>(seed + 99)) {
    for (auto& p : reference_->parameters()) p.set_requires_grad(false);
  }

  std::string name() const override { return kOnPolicyRecipe; }
  uint64_t updates_per_batch() const override { return kEpochs * kMiniBatches; }
  uint64_t steps_per_iteration() const override { return 8; }

  double units(const algorithms::Batch& batch, const std::vector<size_t>& items) const override {
    double n = 0;
    for (size_t i : items) n += static_cast<double>(batch.rollouts->responses[i].size());
    return n;
  }

  std::map<std::string, double> evaluate() override { return {}; }
  torch::nn::Module& trainable() override { return *policy_; }
  std::vector<std::string> metric_names() const override { return {"reward"}; }
  double flops_per_token() const override { return algorithms::training_flops_per_token(*policy_); }

  models::TensorMap state() const override {
    models::TensorMap s;
    for (const auto& [name, t] : reference_->state_dict()) s["reference." + name] = t;
    std::lock_guard<std::mutex> lock(shuffle_.mutex());
    s["shuffle"] = shuffle_.get_state();
    s["kl_coef"] = torch::tensor(kl_coef_, torch::kDouble);
    s["iterations_seen"] = torch::tensor(iterations_seen_, torch::kLong);
    return s;
  }

  void load_state(const models::TensorMap& s, const std::string& source) override {
    for (const char* key : {"shuffle", "kl_coef", "iterations_seen"})
      RUDDER_CHECK(s.count(key), source, ": no '", key, "' in the method state");
    models::TensorMap reference;
    for (const auto& [name, t] : s) {
      if (name.rfind("reference.", 0) == 0) reference[name.substr(10)] = t;
    }
    reference_->load_state_dict(reference, source);
    std::lock_guard<std::mutex> lock(shuffle_.mutex());
    shuffle_.set_state(s.at("shuffle"));
    kl_coef_ = s.at("kl_coef").item<double>();
    iterations_seen_ = s.at("iterations_seen").item<int64_t>();
  }

  void on_iteration_start(uint64_t) override {
    torch::NoGradGuard no_grad;
    reference_->load_state_dict(policy_->state_dict(), "the policy");
    kl_coef_ *= 1.5;
    ++iterations_seen_;
  }

 protected:
  std::vector<std::vector<size_t>> plan_updates(const algorithms::Batch& batch) override {
    std::vector<std::vector<size_t>> updates;
    const auto n = static_cast<int64_t>(batch.size());
    for (uint64_t epoch = 0; epoch < kEpochs; ++epoch) {
      const at::Tensor order = torch::randperm(n, shuffle_, torch::kLong);
      const int64_t per = n / static_cast<int64_t>(kMiniBatches);
      for (uint64_t m = 0; m < kMiniBatches; ++m) {
        std::vector<size_t> items;
        for (int64_t k = 0; k < per; ++k)
          items.push_back(
              static_cast<size_t>(order[static_cast<int64_t>(m) * per + k].item<int64_t>()));
        updates.push_back(items);
      }
    }
    return updates;
  }

  algorithms::StepStats forward_backward(const algorithms::Batch& batch,
                                         const std::vector<size_t>& items,
                                         double total_units) override {
    const algorithms::Rollouts& r = *batch.rollouts;
    std::vector<data::TokenizedPair> rows;
    std::vector<double> advantages;
    for (size_t i : items) {
      rows.push_back({r.prompts[i], r.responses[i], {}});
      double sum = 0, count = 0;  // the mean reward of the prompt's samples: the baseline
      for (size_t j = 0; j < r.size(); ++j) {
        if (r.groups[j] != r.groups[i]) continue;
        sum += r.rewards[j];
        ++count;
      }
      advantages.push_back(r.rewards[i] - sum / count);
    }
    const data::Batch b = data::collate(rows, pad_id_);
    const at::Tensor logp = models::token_logprobs(
        policy_->forward({b.input_ids, b.attention_mask, b.position_ids}), b.input_ids);  // [B, T]
    at::Tensor logp_ref;
    {
      torch::NoGradGuard no_grad;
      logp_ref = models::token_logprobs(
          reference_->forward({b.input_ids, b.attention_mask, b.position_ids}), b.input_ids);
    }
    const at::Tensor adv = torch::tensor(advantages, torch::kDouble).to(torch::kFloat).unsqueeze(1);
    const at::Tensor per_token = -adv * logp + kl_coef_ * (logp - logp_ref);  // [B, T]
    const at::Tensor loss_sum = models::masked_sum(per_token, b.loss_mask).sum();
    (loss_sum / total_units).backward();
    algorithms::StepStats s;
    s.loss_sum = loss_sum.item<double>();
    s.units = b.loss_mask.sum().item<double>();
    s.tokens = b.attention_mask.sum().item<double>();
    s.sums["reward"] = 0;
    for (size_t i : items)
      s.sums["reward"] += r.rewards[i] * static_cast<double>(r.responses[i].size());
    return s;
  }

 private:
  std::shared_ptr<models::CausalLM> policy_;
  std::shared_ptr<models::CausalLM> reference_;
  int64_t pad_id_;
  mutable at::Generator shuffle_;
  double kl_coef_ = 0.01;
  int64_t iterations_seen_ = 0;
};

trainer::Experiment build(const ExperimentConfig& config) {
  torch::manual_seed(config.seed());
  trainer::Experiment e;
  e.tokenizer = data::make_tokenizer(config.tokenizer(), config.model().path());
  e.policy = models::make_model(config.model(), e.tokenizer->vocab_size());
  const std::vector<std::string> names(config.data().synthetic().tasks().begin(),
                                       config.data().synthetic().tasks().end());
  const auto tasks =
      data::SyntheticTasks(names, config.seed()).examples(config.data().synthetic().num_train(), 0);
  std::vector<std::string> prompts;
  for (const auto& t : tasks) prompts.push_back(t.prompt);
  algorithms::OnPolicyOptions options;
  options.samples_per_prompt = 2;
  options.sampling = config.rollout().sampling();
  options.seed = config.seed();
  options.shuffle = config.data().shuffle();
  options.tokenizer = config.tokenizer();
  options.data = config.data();
  e.source = std::make_unique<algorithms::OnPolicySource>(
      e.policy, e.tokenizer, prompts, std::make_shared<rewards::TaskReward>(tasks), options);
  e.algorithm = std::make_unique<Reinforce>(e.policy, e.tokenizer->pad_id(), config.seed());
  auto policy = e.policy;
  e.export_final = [policy](const std::string& dir) { models::save_hf_model(*policy, dir); };
  return e;
}

}  // namespace

void register_on_policy_recipe() {
  static const bool registered = [] {
    trainer::Recipe recipe;
    recipe.build = build;
    recipe.uses = {"rollout.sampling"};
    trainer::recipes().add(kOnPolicyRecipe, std::move(recipe));
    return true;
  }();
  (void)registered;
}

}  // namespace rudder::testing
