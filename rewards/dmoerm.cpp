#include "rewards/dmoerm.h"

#include <cmath>

#include <torch/torch.h>

#include "core/error.h"
#include "models/lora.h"
#include "rewards/dmoerm_aggregate.h"

namespace rudder::rewards {
namespace {

// The aggregator MLP's parameters: w1 [H, K*H], b1 [H], w2 [H], b2 [1], prelu [1] (init 0.25).
struct AggregatorImpl : torch::nn::Module {
  AggregatorImpl(int64_t experts, int64_t hidden) {
    const double bound1 = 1.0 / std::sqrt(static_cast<double>(experts * hidden));
    const double bound2 = 1.0 / std::sqrt(static_cast<double>(hidden));
    w1 = register_parameter("w1",
                            torch::empty({hidden, experts * hidden}).uniform_(-bound1, bound1));
    b1 = register_parameter("b1", torch::zeros({hidden}));
    w2 = register_parameter("w2", torch::empty({hidden}).uniform_(-bound2, bound2));
    b2 = register_parameter("b2", torch::zeros({1}));
    prelu = register_parameter("prelu", torch::full({1}, 0.25));
  }
  at::Tensor w1, b1, w2, b2, prelu;
};
TORCH_MODULE(Aggregator);

}  // namespace

DmoermNet::DmoermNet(std::shared_ptr<models::CausalLM> base, DmoermLayout layout,
                     const DmoermConfig& config)
    : base_(std::move(base)), layout_(std::move(layout)), config_(config) {
  RUDDER_CHECK(!layout_.categories.empty(), "DMoERM needs at least one category");
  RUDDER_CHECK(!layout_.dimensions.empty(), "DMoERM needs at least one capability dimension");
  RUDDER_CHECK(config_.expert_rank() > 0, "reward_model.dmoerm.expert_rank must be > 0, got ",
               config_.expert_rank());
  register_module("base", base_);
  const int64_t h = base_->spec().hidden_size;
  const auto c = static_cast<int64_t>(layout_.categories.size());
  const auto k = static_cast<int64_t>(layout_.dimensions.size());
  base_head_ = register_module("base_head", models::ScalarHead(h));
  router_ = register_module("router", torch::nn::Linear(h, c));
  experts_ = register_module("experts", torch::nn::ModuleList());
  expert_heads_ = register_module("expert_heads", torch::nn::ModuleList());
  aggregators_ = register_module("aggregators", torch::nn::ModuleList());
  LoraConfig lora;
  lora.set_rank(config_.expert_rank());
  lora.set_alpha(config_.expert_alpha());
  for (int64_t i = 0; i < c * k; ++i) {
    experts_->push_back(models::make_detached_lora(*base_, lora));
    expert_heads_->push_back(models::ScalarHead(h));
  }
  for (int64_t i = 0; i < c; ++i) aggregators_->push_back(Aggregator(k, h));
  to(base_->parameters().front().device());
}

at::Tensor DmoermNet::last_hidden(const data::Batch& b) {
  const auto device = base_->parameters().front().device();
  const models::ForwardInput input =
      models::batch_input(b.input_ids, b.attention_mask, b.position_ids, device);
  const at::Tensor hidden = base_->final_hidden(input);
  const at::Tensor last = models::last_real_index(input.attention_mask);       // [B]
  return hidden.index({torch::arange(hidden.size(0), last.options()), last});  // [B, H]
}

at::Tensor DmoermNet::route_logits(const data::Batch& prompts) {
  return router_(last_hidden(prompts));
}

at::Tensor DmoermNet::base_scores(const data::Batch& b) {
  return base_head_->forward(last_hidden(b));
}

at::Tensor DmoermNet::expert_hidden(size_t c, size_t k, const data::Batch& b) {
  RUDDER_ASSERT(c < layout_.categories.size() && k < layout_.dimensions.size());
  models::LoraAttachment attached(*base_, *experts_[c * layout_.dimensions.size() + k]);
  return last_hidden(b);
}

at::Tensor DmoermNet::expert_scores(size_t c, size_t k, const at::Tensor& hidden) {
  auto* head = expert_heads_[c * layout_.dimensions.size() + k]->as<models::ScalarHeadImpl>();
  return head->forward(hidden);
}

at::Tensor DmoermNet::aggregate(size_t c, const at::Tensor& hidden) {
  auto* a = aggregators_[c]->as<AggregatorImpl>();
  return dmoerm_aggregate(hidden, {a->w1, a->b1, a->w2, a->b2, a->prelu});
}

void DmoermNet::copy_base_head_to_experts() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < expert_heads_->size(); ++i) {
    auto* head = expert_heads_[i]->as<models::ScalarHeadImpl>();
    head->score->weight.copy_(base_head_->score->weight);
    head->score->bias.copy_(base_head_->score->bias);
  }
}

}  // namespace rudder::rewards
