#include "trainer/experiment.h"

#include <filesystem>
#include <iomanip>
#include <sstream>

#include <openssl/evp.h>

#include <torch/torch.h>

#include "algorithms/dpo.h"
#include "algorithms/reward_modeling.h"
#include "algorithms/sft.h"
#include "core/error.h"
#include "core/log.h"
#include "data/dataset.h"
#include "data/synthetic.h"
#include "models/factory.h"
#include "rollout/generate.h"
#include "rollout/win_rate.h"

#include <ATen/CPUGeneratorImpl.h>
#include "models/safetensors.h"
#include "rewards/scalar_reward_model.h"

namespace rudder::trainer {
namespace {

std::vector<data::TokenizedPair> tokenize_all(const std::vector<data::SftExample>& examples,
                                              const data::Tokenizer& tok,
                                              const ExperimentConfig& c) {
  std::vector<data::TokenizedPair> out;
  out.reserve(examples.size());
  for (const auto& ex : examples)
    out.push_back(data::tokenize_pair(tok, ex.prompt, ex.completion, c.tokenizer(), c.data()));
  return out;
}

// SFT data: JSONL files, or the synthetic tasks (with ground truth for evaluation).
algorithms::SftData load_sft_data(const ExperimentConfig& c, const data::Tokenizer& tokenizer) {
  algorithms::SftData out;
  std::vector<data::SftExample> train, eval;
  const bool skip = c.data().on_bad_line() == "skip";
  if (!c.data().train_path().empty()) {
    train = data::load_sft_jsonl(c.data().train_path(), c.tokenizer().chat_template(), skip);
    RUDDER_CHECK(!train.empty(), c.data().train_path(), ": no training examples");
    if (!c.data().eval_path().empty())
      eval = data::load_sft_jsonl(c.data().eval_path(), c.tokenizer().chat_template(), skip);
  } else {
    const std::vector<std::string> tasks(c.data().synthetic().tasks().begin(),
                                         c.data().synthetic().tasks().end());
    const data::SyntheticTasks synthetic(tasks, c.seed());
    for (const auto& ex : synthetic.examples(c.data().synthetic().num_train(), 0))
      train.push_back(data::SyntheticTasks::sft(ex));
    out.eval_tasks = synthetic.examples(c.data().synthetic().num_eval(), 1);
    for (const auto& ex : out.eval_tasks) eval.push_back(data::SyntheticTasks::sft(ex));
  }
  out.train = tokenize_all(train, tokenizer, c);
  out.eval = tokenize_all(eval, tokenizer, c);
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

// Pairs from the starting model's own samples: per prompt, the best against the worst sample by
// ground truth (prompts whose samples all score the same give no pair).
std::vector<data::PreferencePair> sampled_pairs(const ExperimentConfig& c, models::CausalLM& model,
                                                const data::Tokenizer& tok,
                                                const std::vector<data::TaskExample>& tasks) {
  const uint32_t k = c.data().synthetic().samples_per_prompt();
  SamplingParams sampling = c.eval().sampling();
  sampling.set_temperature(1.0);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(c.seed() + 7);
  std::vector<data::PreferencePair> pairs;
  const bool was_training = model.is_training();
  model.eval();
  for (size_t start = 0; start < tasks.size(); start += 16) {
    const size_t end = std::min(tasks.size(), start + 16);
    std::vector<std::vector<int64_t>> prompts;
    for (size_t i = start; i < end; ++i) {
      for (uint32_t s = 0; s < k; ++s) prompts.push_back(tok.encode(tasks[i].prompt));
    }
    const auto completions =
        rollout::generate(model, prompts, sampling, tok.eos_id(), tok.pad_id(), generator);
    for (size_t i = start; i < end; ++i) {
      std::vector<std::string> texts;
      std::vector<double> scores;
      for (uint32_t s = 0; s < k; ++s) {
        std::vector<int64_t> ids = completions[(i - start) * k + s].tokens;
        if (completions[(i - start) * k + s].finished_by_eos) ids.pop_back();
        texts.push_back(tok.decode(ids));
        scores.push_back(data::SyntheticTasks::score(tasks[i], texts.back()));
      }
      const size_t best = rollout::best_of_n(scores), worst = rollout::best_of_n(scores, true);
      if (scores[best] == scores[worst] || texts[best].empty() || texts[worst].empty()) continue;
      pairs.push_back({tasks[i].prompt, texts[best], texts[worst], scores[best] - scores[worst],
                       tasks[i].category});
    }
  }
  model.train(was_training);
  RUDDER_LOG(kInfo) << "made " << pairs.size() << " preference pairs from " << tasks.size()
                    << " prompts x " << k << " samples of the starting model";
  return pairs;
}

// Preference data: JSONL files, or pairs made from the synthetic tasks (answer against a
// corruption, or best against worst of the starting model's samples).
algorithms::PreferenceData load_preference_data(const ExperimentConfig& c,
                                                const data::Tokenizer& tokenizer,
                                                models::CausalLM& model) {
  algorithms::PreferenceData out;
  std::vector<data::PreferencePair> train, eval;
  const bool skip = c.data().on_bad_line() == "skip";
  if (!c.data().train_path().empty()) {
    train = data::load_preference_jsonl(c.data().train_path(), c.tokenizer().chat_template(), skip);
    RUDDER_CHECK(!train.empty(), c.data().train_path(), ": no preference pairs");
    if (!c.data().eval_path().empty()) {
      eval = data::load_preference_jsonl(c.data().eval_path(), c.tokenizer().chat_template(), skip);
    }
  } else {
    const std::vector<std::string> tasks(c.data().synthetic().tasks().begin(),
                                         c.data().synthetic().tasks().end());
    const data::SyntheticTasks synthetic(tasks, c.seed());
    data::SplitMix64 rng(c.seed() + 101);
    const auto train_tasks = synthetic.examples(c.data().synthetic().num_train(), 0);
    if (c.data().synthetic().pair_source() == "policy_samples") {
      train = sampled_pairs(c, model, tokenizer, train_tasks);
      RUDDER_CHECK(!train.empty(), "no preference pairs: every prompt's samples scored the same");
    } else {
      for (const auto& ex : train_tasks) train.push_back(data::SyntheticTasks::preference(ex, rng));
    }
    out.eval_tasks = synthetic.examples(c.data().synthetic().num_eval(), 1);
    for (const auto& ex : out.eval_tasks) eval.push_back(data::SyntheticTasks::preference(ex, rng));
  }
  out.train = tokenize_pairs(train, tokenizer, c);
  out.eval = tokenize_pairs(eval, tokenizer, c);
  return out;
}

// SHA-256 over the reference weights and the tokenized pairs: the key of the log-prob cache.
std::string reference_cache_key(const models::CausalLM& reference,
                                const algorithms::PreferenceRows& rows) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  for (const auto& [name, t] : reference.state_dict()) {
    const at::Tensor c = t.detach().to(torch::kCPU).contiguous();
    EVP_DigestUpdate(ctx.get(), name.data(), name.size());
    EVP_DigestUpdate(ctx.get(), c.data_ptr(), c.nbytes());
  }
  for (const auto* side : {&rows.chosen, &rows.rejected}) {
    for (const auto& r : *side) {
      EVP_DigestUpdate(ctx.get(), r.prompt.data(), r.prompt.size() * sizeof(int64_t));
      EVP_DigestUpdate(ctx.get(), r.response.data(), r.response.size() * sizeof(int64_t));
    }
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &len);
  std::ostringstream hex;
  for (unsigned int i = 0; i < 8; ++i)
    hex << std::hex << std::setw(2) << std::setfill('0') << static_cast<int>(digest[i]);
  return hex.str();
}

// Reference log-probs of the training pairs, computed once and cached under output_dir/cache
// (reused on resume and by reruns with the same reference and data).
algorithms::ReferenceLogps cached_reference_logps(const ExperimentConfig& c,
                                                  models::CausalLM& reference,
                                                  const algorithms::PreferenceRows& rows,
                                                  int64_t pad_id) {
  const auto dir = std::filesystem::path(c.output_dir()) / "cache";
  const auto path =
      dir / ("reference_logps-" + reference_cache_key(reference, rows) + ".safetensors");
  if (std::filesystem::exists(path)) {
    const auto t = models::load_safetensors(path.string()).tensors;
    RUDDER_CHECK(t.count("chosen") && t.count("rejected") &&
                     t.at("chosen").size(0) == static_cast<int64_t>(rows.size()),
                 path.string(), ": does not hold reference log-probs of ", rows.size(), " pairs");
    RUDDER_LOG(kInfo) << "reference log-probs from " << path.string();
    return {t.at("chosen"), t.at("rejected")};
  }
  RUDDER_LOG(kInfo) << "computing reference log-probs of " << rows.size() << " pairs";
  algorithms::ReferenceLogps logps = algorithms::compute_reference_logps(reference, rows, pad_id);
  std::filesystem::create_directories(dir);
  models::save_safetensors(path.string(), {{"chosen", logps.chosen}, {"rejected", logps.rejected}});
  return logps;
}

// A frozen copy of `model` (the reference when no reference_path is given).
std::shared_ptr<models::CausalLM> frozen_copy(const models::CausalLM& model) {
  auto copy = std::make_shared<models::CausalLM>(model.spec());
  torch::NoGradGuard no_grad;
  auto source = model.named_parameters(true);
  for (auto& item : copy->named_parameters(true)) item.value().copy_(source[item.key()]);
  copy->to(model.parameters().front().device());
  return copy;
}

}  // namespace

Experiment build_experiment(const ExperimentConfig& config) {
  RUDDER_CHECK(config.dtype() == "float32", "dtype '", config.dtype(),
               "' is not supported by the trainer yet (use float32)");
  RUDDER_CHECK(config.device() == "auto" || config.device() == "cpu" ||
                   config.device().rfind("cuda", 0) == 0,
               "device '", config.device(), "': expected auto, cpu, cuda or cuda:N");
  RUDDER_CHECK(!config.training().bf16_autocast(),
               "training.bf16_autocast is not implemented yet; set it to false");
  torch::manual_seed(config.seed());
  Experiment e;
  e.tokenizer = data::make_tokenizer(config.tokenizer(), config.model().path());
  e.model = models::make_model(config.model(), e.tokenizer->vocab_size());
  const bool cuda = config.device().rfind("cuda", 0) == 0 ||
                    (config.device() == "auto" && torch::cuda::is_available());
  if (cuda) {
    RUDDER_CHECK(torch::cuda::is_available(), "device '", config.device(),
                 "' asked for, but CUDA is not available");
    e.model->to(torch::Device(config.device() == "auto" ? "cuda" : config.device()));
  }
  switch (config.method_case()) {
    case ExperimentConfig::kSft:
      e.algorithm = std::make_unique<algorithms::Sft>(e.model, e.tokenizer,
                                                      load_sft_data(config, *e.tokenizer), config);
      break;
    case ExperimentConfig::kRewardModel: {
      auto net = std::make_shared<rewards::ScalarRewardNet>(e.model);
      e.reward_net = net;
      e.algorithm = std::make_unique<algorithms::RewardModeling>(
          net, e.tokenizer->pad_id(), load_preference_data(config, *e.tokenizer, *e.model),
          config.reward_model());
      break;
    }
    case ExperimentConfig::kDpo: {
      std::shared_ptr<models::CausalLM> reference =
          config.model().reference_path().empty()
              ? frozen_copy(*e.model)
              : models::load_hf_model(config.model().reference_path());
      reference->to(e.model->parameters().front().device());
      algorithms::PreferenceData data = load_preference_data(config, *e.tokenizer, *e.model);
      algorithms::ReferenceLogps precomputed;
      if (config.dpo().reference_mode() == "precompute" && !config.dpo().reference_free()) {
        precomputed = cached_reference_logps(config, *reference, data.train, e.tokenizer->pad_id());
      }
      e.algorithm = std::make_unique<algorithms::Dpo>(
          e.model, reference, e.tokenizer, std::move(data), config, std::move(precomputed));
      break;
    }
    case ExperimentConfig::METHOD_NOT_SET:
      throw core::InvalidArgument(
          "the config names no method: add one of sft, reward_model, dpo, ppo, spin, ctrl, mcts");
    default:
      throw core::InvalidArgument(
          core::str("method '",
                    ExperimentConfig::descriptor()->FindFieldByNumber(config.method_case())->name(),
                    "' is not implemented yet"));
  }
  return e;
}

TrainResult run_experiment(const ExperimentConfig& config, core::ProcessGroup& group,
                           const TrainOptions& options) {
  Experiment e = build_experiment(config);
  Trainer trainer(config, *e.algorithm, group, options);
  TrainResult result = trainer.run();
  if (group.is_main() && !result.stopped_by_signal) {
    const std::string dir = (std::filesystem::path(config.output_dir()) / "final").string();
    if (e.reward_net) {
      auto* rm = dynamic_cast<algorithms::RewardModeling*>(e.algorithm.get());
      RUDDER_ASSERT(rm != nullptr);
      const auto normalization =
          rewards::normalization_of(rm->eval_rewards(), config.reward_model().normalize());
      rewards::ScalarRewardModel(e.reward_net, e.tokenizer, config.tokenizer(), config.data(),
                                 normalization)
          .save(dir);
    } else {
      models::save_hf_model(*e.model, dir);
    }
    RUDDER_LOG(kInfo) << "final model written to " << dir;
  }
  return result;
}

}  // namespace rudder::trainer
