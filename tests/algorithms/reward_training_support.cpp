#include "tests/algorithms/reward_training_support.h"

#include <map>
#include <numeric>

#include <torch/torch.h>

#include "data/collate.h"
#include "data/synthetic.h"
#include "models/logprobs.h"

namespace rudder::testing {
namespace {

// Drops every gradient (leaves it undefined), as PyTorch 2's zero_grad() and Rudder's AdamW do.
// libtorch 1.13's zero_grad() fills zeros instead, which Adam steps with: a parameter frozen
// mid-run (DMoERM's base after its phase 1) would go on moving on its momentum there, and not
// with another libtorch.
void drop_grads(torch::optim::Optimizer& opt) {
  for (auto& group : opt.param_groups())
    for (auto& p : group.params()) p.mutable_grad().reset();
}

}  // namespace

models::ModelSpec tiny_reward_spec() {
  models::ModelSpec s;
  s.vocab_size = 260;
  s.hidden_size = 64;
  s.num_layers = 2;
  s.num_heads = 4;
  s.num_kv_heads = 2;
  s.head_dim = 16;
  s.intermediate_size = 128;
  s.max_positions = 64;
  s.tie_word_embeddings = true;
  return s;
}

std::shared_ptr<models::CausalLM> sft_on_rows(const data::Tokenizer& tokenizer,
                                              const std::vector<data::TokenizedPair>& rows,
                                              int steps, uint64_t seed) {
  torch::manual_seed(seed);
  auto model = std::make_shared<models::CausalLM>(tiny_reward_spec());
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(3e-3));
  for (int step = 0; step < steps; ++step) {
    std::vector<data::TokenizedPair> batch;
    for (size_t i = 0; i < 32; ++i) batch.push_back(rows[(step * 32 + i) % rows.size()]);
    const data::Batch b = data::collate(batch, tokenizer.pad_id());
    const at::Tensor logits = model->forward({b.input_ids, b.attention_mask, b.position_ids});
    const at::Tensor loss =
        -models::sequence_logprobs(logits, b.input_ids, b.loss_mask).sum() / b.loss_mask.sum();
    drop_grads(opt);
    loss.backward();
    opt.step();
  }
  return model;
}

std::shared_ptr<models::CausalLM> sft_tiny_model(const data::Tokenizer& tokenizer, int steps) {
  std::vector<data::TokenizedPair> rows;
  for (const auto& ex : data::SyntheticTasks({"mixed"}, 21).examples(4000, 0)) {
    rows.push_back(data::tokenize_pair(tokenizer, ex.prompt, ex.answer, reward_tokenizer_config(),
                                       reward_data_config()));
  }
  return sft_on_rows(tokenizer, rows, steps, 1);
}

TokenizerConfig reward_tokenizer_config() {
  TokenizerConfig c;
  c.set_add_eos(true);
  return c;
}

DataConfig reward_data_config() {
  DataConfig c;
  c.set_max_length(64);
  c.set_max_prompt_length(24);
  return c;
}

algorithms::PreferenceData synthetic_preferences(const data::Tokenizer& tokenizer, size_t num_train,
                                                 size_t num_eval) {
  const data::SyntheticTasks tasks({"mixed"}, 7);
  data::SplitMix64 rng(11);
  const auto tc = reward_tokenizer_config();
  const auto dc = reward_data_config();
  algorithms::PreferenceData out;
  const auto add = [&](algorithms::PreferenceRows& rows, const data::TaskExample& ex) {
    const auto p = data::SyntheticTasks::preference(ex, rng);
    rows.chosen.push_back(data::tokenize_pair(tokenizer, p.prompt, p.chosen, tc, dc));
    rows.rejected.push_back(data::tokenize_pair(tokenizer, p.prompt, p.rejected, tc, dc));
    rows.margins.push_back(p.margin);
    rows.categories.push_back(p.category);
  };
  for (const auto& ex : tasks.examples(num_train, 0)) add(out.train, ex);
  out.eval_tasks = tasks.examples(num_eval, 1);
  for (const auto& ex : out.eval_tasks) add(out.eval, ex);
  return out;
}

void train_steps(algorithms::Algorithm& algorithm, uint64_t num_rows, int steps, int64_t batch,
                 double lr) {
  // One Adam group per learning-rate scale of algorithm.param_groups() (the trainer's rule).
  std::map<double, std::vector<at::Tensor>> by_scale;
  for (const auto& item : algorithm.trainable().named_parameters(true)) {
    if (!item.value().requires_grad()) continue;
    double scale = 1.0;
    for (const auto& g : algorithm.param_groups()) {
      if (item.key().rfind(g.prefix, 0) == 0) scale = g.lr_scale;
    }
    by_scale[scale].push_back(item.value());
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  for (auto& [scale, params] : by_scale) {
    groups.emplace_back(params, std::make_unique<torch::optim::AdamOptions>(lr * scale));
  }
  torch::optim::Adam opt(groups, torch::optim::AdamOptions(lr));
  std::vector<uint64_t> order(num_rows);
  std::iota(order.begin(), order.end(), 0);
  data::SplitMix64 rng(3);
  size_t next = num_rows;
  for (int step = 0; step < steps; ++step) {
    algorithms::Batch b;
    for (int64_t i = 0; i < batch; ++i) {
      if (next == num_rows) {
        for (size_t k = num_rows - 1; k > 0; --k) std::swap(order[k], order[rng.below(k + 1)]);
        next = 0;
      }
      b.examples.push_back(order[next++]);
    }
    std::vector<size_t> items(b.examples.size());
    std::iota(items.begin(), items.end(), 0);
    drop_grads(opt);
    algorithm.train_micro_batch(b, items, static_cast<double>(items.size()));
    opt.step();
    algorithm.on_step_end(static_cast<uint64_t>(step + 1));
  }
}

}  // namespace rudder::testing
