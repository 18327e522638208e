#include "algorithms/dmoerm_modeling.h"

#include <algorithm>

#include <torch/torch.h>

#include "algorithms/pair_metrics.h"
#include "core/error.h"
#include "rewards/bt_loss.h"

namespace rudder::algorithms {
namespace {

int64_t index_of(const std::vector<std::string>& names, const std::string& name, const char* what) {
  const auto it = std::find(names.begin(), names.end(), name);
  RUDDER_CHECK(it != names.end(), "DMoERM has no ", what, " '", name, "'");
  return it - names.begin();
}

// Summed Bradley-Terry loss of rewards [2n] (chosen rows, then rejected).
at::Tensor bt_sum(const at::Tensor& r) {
  const int64_t n = r.size(0) / 2;
  return rewards::bt_loss(r.narrow(0, 0, n), r.narrow(0, n, n)).loss * static_cast<double>(n);
}

// `rows` of `all` whose category is c.
std::vector<uint64_t> of_category(const std::vector<uint64_t>& rows,
                                  const std::vector<int64_t>& categories, size_t c) {
  std::vector<uint64_t> out;
  for (uint64_t i : rows) {
    if (categories[i] == static_cast<int64_t>(c)) out.push_back(i);
  }
  return out;
}

data::Batch prompts_of(const DmoermRows& d, const std::vector<uint64_t>& rows, int64_t pad_id) {
  std::vector<data::TokenizedPair> p;
  for (uint64_t i : rows) p.push_back(d.prompts[i]);
  return data::collate(p, pad_id);
}

// The aggregated reward [2n] of category c's overall pairs `rows` (experts' states detached).
at::Tensor aggregated(rewards::DmoermNet& net, size_t c, const data::Batch& pairs) {
  std::vector<at::Tensor> hidden;
  {
    torch::NoGradGuard no_grad;
    for (size_t k = 0; k < net.layout().dimensions.size(); ++k)
      hidden.push_back(net.expert_hidden(c, k, pairs));
  }
  return net.aggregate(c, torch::stack(hidden, 1));
}

}  // namespace

DmoermRows make_dmoerm_rows(const std::vector<data::TaskExample>& examples,
                            const rewards::DmoermLayout& layout, const data::Tokenizer& tokenizer,
                            const TokenizerConfig& tc, const DataConfig& dc,
                            data::SplitMix64& rng) {
  DmoermRows out;
  out.dimensions.resize(layout.dimensions.size());
  const auto add = [&](PreferenceRows& rows, const data::PreferencePair& p) {
    rows.chosen.push_back(data::tokenize_pair(tokenizer, p.prompt, p.chosen, tc, dc));
    rows.rejected.push_back(data::tokenize_pair(tokenizer, p.prompt, p.rejected, tc, dc));
    rows.margins.push_back(p.margin);
    rows.categories.push_back(p.category);
  };
  const auto& known = data::SyntheticTasks::dimensions();
  for (const auto& ex : examples) {
    out.categories.push_back(index_of(layout.categories, ex.category, "category"));
    add(out.overall, data::SyntheticTasks::preference(ex, rng));
    for (size_t k = 0; k < layout.dimensions.size(); ++k) {
      const auto d = static_cast<size_t>(index_of(known, layout.dimensions[k], "dimension"));
      add(out.dimensions[k], data::SyntheticTasks::dimension_preference(ex, d, rng));
    }
    auto prompt = data::tokenize_pair(tokenizer, ex.prompt, "", tc, dc);
    prompt.response.clear();
    out.prompts.push_back(std::move(prompt));
  }
  return out;
}

DmoermModeling::DmoermModeling(std::shared_ptr<rewards::DmoermNet> net, int64_t pad_id,
                               DmoermData data)
    : net_(std::move(net)), pad_id_(pad_id), data_(std::move(data)) {
  RUDDER_CHECK(data_.train.size() > 0, "DMoERM training needs task rows");
  RUDDER_CHECK(net_->config().expert_lr_scale() > 0,
               "reward_model.dmoerm.expert_lr_scale must be > 0, got ",
               net_->config().expert_lr_scale());
  if (!base_phase()) freeze_base();
}

// Phase 2 trains neither the base nor phase 1's value head: frozen, the optimizer skips them.
void DmoermModeling::freeze_base() {
  for (auto& item : net_->named_parameters(true)) {
    const std::string& name = item.key();
    if (name.rfind("base.", 0) == 0 || name.rfind("base_head.", 0) == 0)
      item.value().set_requires_grad(false);
  }
}

void DmoermModeling::on_step_end(uint64_t step) {
  steps_ = step;
  if (step == net_->config().base_steps()) {
    freeze_base();
    net_->copy_base_head_to_experts();
  }
}

models::TensorMap DmoermModeling::state() const {
  return {{"steps", torch::tensor({static_cast<int64_t>(steps_)}, torch::kLong)}};
}

void DmoermModeling::load_state(const models::TensorMap& state, const std::string& source) {
  const auto it = state.find("steps");
  RUDDER_CHECK(it != state.end() && it->second.numel() == 1, source,
               ": missing DMoERM state 'steps'");
  steps_ = static_cast<uint64_t>(it->second.item<int64_t>());
  if (!base_phase()) freeze_base();
}

at::Tensor DmoermModeling::router_loss(const std::vector<uint64_t>& rows, double* correct) {
  const at::Tensor logits = net_->route_logits(prompts_of(data_.train, rows, pad_id_));
  std::vector<int64_t> labels;
  for (uint64_t i : rows) labels.push_back(data_.train.categories[i]);
  const at::Tensor target = torch::tensor(labels, torch::kLong).to(logits.device());
  *correct = logits.argmax(1).eq(target).sum().item<double>();
  return torch::nn::functional::cross_entropy(
      logits, target, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
}

at::Tensor DmoermModeling::base_loss(const std::vector<uint64_t>& rows) {
  return bt_sum(net_->base_scores(collate_pairs(data_.train.overall, rows, pad_id_)));
}

at::Tensor DmoermModeling::expert_loss(const std::vector<uint64_t>& rows) {
  at::Tensor total = torch::zeros({}, net_->base().parameters().front().options());
  const auto& layout = net_->layout();
  for (size_t c = 0; c < layout.categories.size(); ++c) {
    const auto mine = of_category(rows, data_.train.categories, c);
    if (mine.empty()) continue;
    for (size_t k = 0; k < layout.dimensions.size(); ++k) {
      const auto pairs = collate_pairs(data_.train.dimensions[k], mine, pad_id_);
      total = total + bt_sum(net_->expert_scores(c, k, net_->expert_hidden(c, k, pairs)));
    }
    const auto overall = collate_pairs(data_.train.overall, mine, pad_id_);
    total = total + net_->config().aggregator_weight() * bt_sum(aggregated(*net_, c, overall));
  }
  return total;
}

StepStats DmoermModeling::train_examples(const std::vector<uint64_t>& examples,
                                         double total_units) {
  double correct = 0;
  at::Tensor loss = net_->config().router_weight() * router_loss(examples, &correct);
  loss = loss + (base_phase() ? base_loss(examples) : expert_loss(examples));
  backward(loss / total_units);
  StepStats s;
  s.loss_sum = loss.item<double>();
  s.units = static_cast<double>(examples.size());
  s.sums["router_accuracy"] = correct;
  return s;
}

namespace {

// Held-out scores of DMoERM's parts, one entry per eval row (chosen and rejected).
struct DmoermEvalScores {
  std::vector<int64_t> routed;
  std::vector<double> chosen, rejected, base_chosen, base_rejected;
  std::vector<std::vector<double>> dim_chosen, dim_rejected;  // [dimension][row]
};

// Writes the scores [2n] of `rows` into `chosen` and `rejected` at those rows.
void scatter_pairs(const at::Tensor& scores, const std::vector<uint64_t>& rows,
                   std::vector<double>& chosen, std::vector<double>& rejected) {
  const at::Tensor s = scores.to(torch::kDouble).cpu();
  const auto n = static_cast<int64_t>(rows.size());
  for (int64_t j = 0; j < n; ++j) {
    chosen[rows[j]] = s[j].item<double>();
    rejected[rows[j]] = s[j + n].item<double>();
  }
}

DmoermEvalScores eval_scores(rewards::DmoermNet& net, const DmoermRows& d, int64_t pad) {
  const size_t n = d.size(), dims = net.layout().dimensions.size();
  DmoermEvalScores e;
  e.chosen = e.rejected = e.base_chosen = e.base_rejected = std::vector<double>(n);
  e.dim_chosen = e.dim_rejected = std::vector<std::vector<double>>(dims, std::vector<double>(n));
  const auto all = all_indices(n);
  for (size_t start = 0; start < n; start += 64) {
    const std::vector<uint64_t> part(all.begin() + start, all.begin() + std::min(n, start + 64));
    const at::Tensor best = net.route_logits(prompts_of(d, part, pad)).argmax(1).cpu();
    for (int64_t j = 0; j < best.size(0); ++j) e.routed.push_back(best[j].item<int64_t>());
    scatter_pairs(net.base_scores(collate_pairs(d.overall, part, pad)), part, e.base_chosen,
                  e.base_rejected);
  }
  for (size_t c = 0; c < net.layout().categories.size(); ++c) {
    const auto mine = of_category(all, e.routed, c);
    for (size_t start = 0; start < mine.size(); start += 64) {
      const std::vector<uint64_t> part(mine.begin() + start,
                                       mine.begin() + std::min(mine.size(), start + 64));
      scatter_pairs(aggregated(net, c, collate_pairs(d.overall, part, pad)), part, e.chosen,
                    e.rejected);
      for (size_t k = 0; k < dims; ++k) {
        const auto pairs = collate_pairs(d.dimensions[k], part, pad);
        scatter_pairs(net.expert_scores(c, k, net.expert_hidden(c, k, pairs)), part,
                      e.dim_chosen[k], e.dim_rejected[k]);
      }
    }
  }
  return e;
}

}  // namespace

std::map<std::string, double> DmoermModeling::evaluate() {
  const DmoermRows& d = data_.eval;
  if (d.size() == 0) return {};
  torch::NoGradGuard no_grad;
  const bool was_training = net_->is_training();
  net_->eval();
  const DmoermEvalScores e = eval_scores(*net_, d, pad_id_);
  net_->train(was_training);
  auto out = pairwise_metrics(e.chosen, e.rejected, d.overall.categories);
  double routed_right = 0;
  for (size_t i = 0; i < d.size(); ++i) routed_right += e.routed[i] == d.categories[i];
  out["eval/router_accuracy"] = routed_right / static_cast<double>(d.size());
  out["eval/base_accuracy"] =
      pairwise_metrics(e.base_chosen, e.base_rejected, {}).at("eval/accuracy");
  for (size_t k = 0; k < e.dim_chosen.size(); ++k) {
    out["eval/dimension_accuracy/" + net_->layout().dimensions[k]] =
        pairwise_metrics(e.dim_chosen[k], e.dim_rejected[k], {}).at("eval/accuracy");
  }
  return out;
}

std::vector<ParamGroup> DmoermModeling::param_groups() const {
  const double scale = net_->config().expert_lr_scale();
  return {{"experts.", scale}, {"aggregators.", scale}};
}

double DmoermModeling::flops_per_token() const { return training_flops_per_token(*net_); }

}  // namespace rudder::algorithms
