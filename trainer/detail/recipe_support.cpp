#include "trainer/detail/recipe_support.h"

#include <cstdlib>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "core/distributed.h"
#include "core/error.h"
#include "core/log.h"
#include "data/dataset.h"
#include "data/synthetic.h"
#include "models/factory.h"
#include "models/hf_io.h"
#include "rewards/task_reward.h"
#include "rollout/pair_collection.h"

namespace rudder::trainer::detail {
namespace {

std::vector<data::TokenizedPair> tokenize_all(const std::vector<data::SftExample>& examples,
                                              const data::Tokenizer& tok,
                                              const ExperimentConfig& c) {
  std::vector<data::TokenizedPair> out;
  out.reserve(examples.size());
  // Without mask_prompt every prompt token is learned already.
  const bool all_turns = c.sft().all_assistant_turns() && c.sft().mask_prompt();
  for (const auto& ex : examples) {
    out.push_back(
        data::tokenize_pair(tok, ex.prompt, ex.completion, c.tokenizer(), c.data(),
                            all_turns ? ex.assistant_turns : std::vector<data::TextSpan>{}));
  }
  return out;
}

algorithms::PreferenceRows tokenize_pairs(const std::vector<data::PreferencePair>& pairs,
                                          const data::Tokenizer& tok, const ExperimentConfig& c) {
  algorithms::PreferenceRows rows;
  for (const auto& p : pairs) {
    rows.chosen.push_back(data::tokenize_pair(tok, p.prompt, p.chosen, c.tokenizer(), c.data()));
    rows.rejected.push_back(
        data::tokenize_pair(tok, p.prompt, p.rejected, c.tokenizer(), c.data()));
    rows.margins.push_back(p.margin);
    rows.categories.push_back(p.category);
  }
  return rows;
}

// Best against worst of the starting model's samples of `tasks`, by ground truth.
std::vector<data::PreferencePair> sampled_pairs(const ExperimentConfig& c, models::CausalLM& model,
                                                const data::Tokenizer& tok,
                                                const std::vector<data::TaskExample>& tasks) {
  rollout::PairCollectionOptions options;
  options.samples_per_prompt = c.data().synthetic().samples_per_prompt();
  options.sampling = c.eval().sampling();
  options.sampling.set_temperature(1.0);
  std::vector<std::string> prompts, categories;
  for (const auto& t : tasks) {
    prompts.push_back(t.prompt);
    categories.push_back(t.category);
  }
  rewards::TaskReward ground_truth(tasks);
  // On CUDA the device's default generator samples (seeded by the experiment seed).
  c10::optional<at::Generator> generator;
  if (model.parameters().front().is_cpu())
    generator = at::make_generator<at::CPUGeneratorImpl>(c.seed() + 7);
  auto pairs =
      rollout::collect_pairs(model, tok, prompts, categories, ground_truth, options, generator);
  RUDDER_LOG(kInfo) << "made " << pairs.size() << " preference pairs from " << tasks.size()
                    << " prompts x " << options.samples_per_prompt
                    << " samples of the starting model";
  return pairs;
}

// `cuda:N` as named; `cuda` or `auto`: the GPU of this rank's LOCAL_RANK (one GPU per rank, as
// NCCL needs), cuda:0 for a single process.
torch::Device cuda_device(const std::string& name) {
  if (name.rfind("cuda:", 0) == 0) return torch::Device(name);
  const int local_rank = core::launch_environment(std::getenv).local_rank;
  RUDDER_CHECK(local_rank < static_cast<int>(torch::cuda::device_count()), "rank with LOCAL_RANK ",
               local_rank, " needs its own GPU, but only ", torch::cuda::device_count(),
               " are visible");
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
}

}  // namespace

std::vector<data::TaskExample> synthetic_examples(const ExperimentConfig& c, uint64_t count,
                                                  uint64_t split) {
  const std::vector<std::string> tasks(c.data().synthetic().tasks().begin(),
                                       c.data().synthetic().tasks().end());
  return data::SyntheticTasks(tasks, c.seed()).examples(count, split);
}

Experiment make_base(const ExperimentConfig& config) {
  RUDDER_CHECK(config.device() == "auto" || config.device() == "cpu" ||
                   config.device().rfind("cuda", 0) == 0,
               "device '", config.device(), "': expected auto, cpu, cuda or cuda:N");
  RUDDER_CHECK(!(config.dtype() == "bfloat16" && config.training().bf16_autocast()),
               "dtype bfloat16 already computes in bfloat16; training.bf16_autocast is for "
               "float32 weights (set one of them)");
  torch::manual_seed(config.seed());
  Experiment e;
  e.tokenizer = data::make_tokenizer(config.tokenizer(), config.model().path());
  e.policy = models::make_model(config.model(), e.tokenizer->vocab_size());
  e.policy->set_activation_checkpointing(config.training().activation_checkpointing());
  const bool cuda = config.device().rfind("cuda", 0) == 0 ||
                    (config.device() == "auto" && torch::cuda::is_available());
  if (cuda) {
    RUDDER_CHECK(torch::cuda::is_available(), "device '", config.device(),
                 "' asked for, but CUDA is not available");
    e.policy->to(cuda_device(config.device()));
  }
  return e;
}

// The synthetic tasks' settings are read only when no data file is named, data.fields only when
// one is.
void refuse_unread_data_settings(const ExperimentConfig& c) {
  if (!c.data().train_path().empty()) {
    refuse_if_set(c, "data.synthetic",
                  "data.train_path names a file, so no synthetic task is made");
  } else {
    refuse_if_set(c, "data.fields", "data.train_path names no file, so no field is read");
  }
}

data::FieldNames data_fields(const ExperimentConfig& c) {
  return data::field_names(c.data().fields());
}

algorithms::SftData load_sft_data(const ExperimentConfig& c, const data::Tokenizer& tokenizer) {
  refuse_unread_data_settings(c);
  algorithms::SftData out;
  std::vector<data::SftExample> train, eval;
  const bool skip = c.data().on_bad_line() == "skip";
  if (!c.data().train_path().empty()) {
    train = data::load_sft_jsonl(c.data().train_path(), c.tokenizer().chat_template(), skip,
                                 nullptr, data_fields(c));
    RUDDER_CHECK(!train.empty(), c.data().train_path(), ": no training examples");
    if (!c.data().eval_path().empty())
      eval = data::load_sft_jsonl(c.data().eval_path(), c.tokenizer().chat_template(), skip,
                                  nullptr, data_fields(c));
  } else {
    for (const auto& ex : synthetic_examples(c, c.data().synthetic().num_train(), 0))
      train.push_back(data::SyntheticTasks::sft(ex));
    out.eval_tasks = synthetic_examples(c, c.data().synthetic().num_eval(), 1);
    for (const auto& ex : out.eval_tasks) eval.push_back(data::SyntheticTasks::sft(ex));
  }
  out.train = tokenize_all(train, tokenizer, c);
  out.eval = tokenize_all(eval, tokenizer, c);
  return out;
}

algorithms::PreferenceData load_preference_data(const ExperimentConfig& c,
                                                const data::Tokenizer& tokenizer,
                                                models::CausalLM& model) {
  refuse_unread_data_settings(c);
  if (c.data().synthetic().pair_source() != "policy_samples") {
    refuse_if_set(c, "data.synthetic.samples_per_prompt",
                  "it counts samples of data.synthetic.pair_source policy_samples");
  }
  algorithms::PreferenceData out;
  std::vector<data::PreferencePair> train, eval;
  const bool skip = c.data().on_bad_line() == "skip";
  if (!c.data().train_path().empty()) {
    train = data::load_preference_jsonl(c.data().train_path(), c.tokenizer().chat_template(), skip,
                                        nullptr, data_fields(c));
    RUDDER_CHECK(!train.empty(), c.data().train_path(), ": no preference pairs");
    if (!c.data().eval_path().empty()) {
      eval = data::load_preference_jsonl(c.data().eval_path(), c.tokenizer().chat_template(), skip,
                                         nullptr, data_fields(c));
    }
  } else {
    data::SplitMix64 rng(c.seed() + 101);
    const auto train_tasks = synthetic_examples(c, c.data().synthetic().num_train(), 0);
    if (c.data().synthetic().pair_source() == "policy_samples") {
      train = sampled_pairs(c, model, tokenizer, train_tasks);
      RUDDER_CHECK(!train.empty(), "no preference pairs: every prompt's samples scored the same");
    } else {
      for (const auto& ex : train_tasks) train.push_back(data::SyntheticTasks::preference(ex, rng));
    }
    out.eval_tasks = synthetic_examples(c, c.data().synthetic().num_eval(), 1);
    for (const auto& ex : out.eval_tasks) eval.push_back(data::SyntheticTasks::preference(ex, rng));
  }
  out.train = tokenize_pairs(train, tokenizer, c);
  out.eval = tokenize_pairs(eval, tokenizer, c);
  return out;
}

RankedData load_ranked_data(const ExperimentConfig& c, const data::Tokenizer& tokenizer) {
  refuse_unread_data_settings(c);
  refuse_if_set(c, "data.synthetic.pair_source",
                "reward_model.loss ranked makes lists of the synthetic answers and corruptions");
  std::vector<data::RankedList> train;
  std::vector<data::PreferencePair> eval;
  RankedData out;
  const bool skip = c.data().on_bad_line() == "skip";
  if (!c.data().train_path().empty()) {
    train = data::load_ranked_jsonl(c.data().train_path(), c.tokenizer().chat_template(), skip,
                                    nullptr, data_fields(c));
    RUDDER_CHECK(!train.empty(), c.data().train_path(), ": no ranked lists");
    if (!c.data().eval_path().empty()) {
      for (const auto& l :
           data::load_ranked_jsonl(c.data().eval_path(), c.tokenizer().chat_template(), skip,
                                   nullptr, data_fields(c))) {
        for (auto& p : data::pairs_of(l)) eval.push_back(std::move(p));
      }
    }
  } else {
    data::SplitMix64 rng(c.seed() + 101);
    for (const auto& ex : synthetic_examples(c, c.data().synthetic().num_train(), 0))
      train.push_back(data::SyntheticTasks::ranked(ex, 4, rng));
    out.pairs.eval_tasks = synthetic_examples(c, c.data().synthetic().num_eval(), 1);
    for (const auto& ex : out.pairs.eval_tasks)
      eval.push_back(data::SyntheticTasks::preference(ex, rng));
  }
  for (const auto& l : train) {
    std::vector<data::TokenizedPair> rows;
    for (const auto& r : l.responses)
      rows.push_back(data::tokenize_pair(tokenizer, l.prompt, r, c.tokenizer(), c.data()));
    out.train.lists.push_back(std::move(rows));
    out.train.ranks.push_back(l.ranks);
  }
  out.pairs.eval = tokenize_pairs(eval, tokenizer, c);
  return out;
}

void train_policy_on_rows(Experiment& e, std::unique_ptr<algorithms::DatasetAlgorithm> algorithm,
                          const ExperimentConfig& config) {
  e.source = std::make_unique<algorithms::DatasetSource>(algorithm->num_train(), config.seed(),
                                                         config.data().shuffle());
  e.algorithm = std::move(algorithm);
  auto policy = e.policy;
  e.export_final = [policy](const std::string& dir) { models::save_hf_model(*policy, dir); };
}

std::shared_ptr<models::CausalLM> frozen_copy(const models::CausalLM& model) {
  auto copy = std::make_shared<models::CausalLM>(model.spec());
  torch::NoGradGuard no_grad;
  auto source = model.named_parameters(true);
  for (auto& item : copy->named_parameters(true)) item.value().copy_(source[item.key()]);
  copy->to(model.parameters().front().device());
  return copy;
}

}  // namespace rudder::trainer::detail
