// Guided decoding end to end: an autoregressive reward model trained on the synthetic
// preferences guides a policy to answers the ground truth scores higher (GenARM), and a
// class-conditional LM trained on labelled reviews steers a policy that writes either kind of
// review toward the class asked for (GeDi). Sampled at temperature 1, seeded.
#include <iostream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "algorithms/arm_modeling.h"
#include "algorithms/class_conditional_lm.h"
#include "data/collate.h"
#include "data/synthetic.h"
#include "models/decoder.h"
#include "rollout/guided_decoding.h"
#include "rollout/local_engine.h"
#include "tests/algorithms/reward_training_support.h"
#include "tests/support/tensor_testing.h"
#include "tests/support/test_support.h"

namespace rudder::algorithms {
namespace {

class GuidedDecodingE2E : public testing::SeededTest {};

std::shared_ptr<models::CausalLM> copy_of(const models::CausalLM& model) {
  auto copy = std::make_shared<models::CausalLM>(model.spec());
  torch::NoGradGuard no_grad;
  auto source = model.named_parameters(true);
  for (auto& item : copy->named_parameters(true)) item.value().copy_(source[item.key()]);
  return copy;
}

// Texts of `n` samples of each prompt, at temperature 1, from `model` with `guidance`.
std::vector<std::vector<std::string>> sample(
    const models::CausalLM& model, const std::shared_ptr<const data::Tokenizer>& tokenizer,
    const std::vector<std::string>& prompts, uint32_t n,
    std::vector<std::shared_ptr<rollout::LogitsProcessor>> guidance) {
  rollout::LocalEngineOptions o;
  o.max_batch = 32;
  o.max_length = 48;
  o.eos_id = tokenizer->eos_id();
  o.tokenizer = tokenizer;
  o.guidance = std::move(guidance);
  rollout::LocalEngine engine(model, o);
  std::vector<rollout::GenerateInput> requests;
  for (size_t i = 0; i < prompts.size(); ++i) {
    rollout::GenerateInput r;
    r.prompt_text = prompts[i];
    r.n = n;
    r.sampling.set_seed(100 + i);
    r.sampling.set_max_new_tokens(20);
    r.sampling.set_temperature(1.0);
    r.sampling.set_top_p(1.0);
    r.sampling.set_repetition_penalty(1.0);
    requests.push_back(std::move(r));
  }
  std::vector<std::vector<std::string>> out;
  for (const auto& result : engine.generate(requests)) {
    std::vector<std::string> texts;
    for (const auto& s : result.samples) texts.push_back(s.text);
    out.push_back(std::move(texts));
  }
  return out;
}

TEST_F(GuidedDecodingE2E, GenarmGuidanceRaisesTheGroundTruthReward) {
  std::shared_ptr<const data::Tokenizer> tok = data::make_byte_tokenizer();
  auto base = testing::sft_tiny_model(*tok);
  auto arm = copy_of(*base);
  // GenARM's regime: a gentle update of the SFT model (beta_r 0.05, as its HH-RLHF scripts).
  GenArmConfig config;
  config.set_beta_r(0.05);
  ArmModeling training(arm, tok->pad_id(), testing::synthetic_preferences(*tok, 2000, 200), config);
  testing::train_steps(training, training.num_train(), 100, 32, 3e-4);
  const double accuracy = training.evaluate().at("eval/accuracy");
  EXPECT_GE(accuracy, 0.9);
  arm->eval();
  base->eval();
  const auto tasks = data::SyntheticTasks({"mixed"}, 7).examples(60, 2);
  std::vector<std::string> prompts;
  for (const auto& t : tasks) prompts.push_back(t.prompt);
  const auto mean_score = [&](const std::vector<std::vector<std::string>>& texts) {
    double sum = 0;
    size_t count = 0;
    for (size_t i = 0; i < tasks.size(); ++i) {
      for (const auto& text : texts[i]) sum += data::SyntheticTasks::score(tasks[i], text), ++count;
    }
    return sum / static_cast<double>(count);
  };
  const double plain = mean_score(sample(*base, tok, prompts, 4, {}));
  const auto guidance = std::make_shared<rollout::GenarmGuidance>(
      std::vector<std::shared_ptr<const models::DecoderWeights>>{
          std::make_shared<const models::DecoderWeights>(*arm)},
      std::vector<double>{1.0}, 32, 48);
  const double guided = mean_score(sample(*base, tok, prompts, 4, {guidance}));
  std::cout << "[ genarm ] ARM held-out accuracy " << accuracy
            << "; mean ground-truth reward of 240 samples: unguided " << plain << ", guided "
            << guided << "\n";
  EXPECT_GE(guided, plain + 0.03);
}

// A policy that writes positive and negative reviews about equally, trained on `reviews`.
std::shared_ptr<models::CausalLM> review_writer(const data::Tokenizer& tok,
                                                const std::vector<data::LabelledText>& reviews,
                                                int steps) {
  std::vector<data::TokenizedPair> rows;
  for (const auto& r : reviews) {
    rows.push_back(data::tokenize_pair(tok, r.prompt, r.text, testing::reward_tokenizer_config(),
                                       testing::reward_data_config()));
  }
  auto model = testing::sft_on_rows(tok, rows, steps, 5);
  model->eval();
  return model;
}

TEST_F(GuidedDecodingE2E, GediSteersTowardTheClassAskedFor) {
  std::shared_ptr<const data::Tokenizer> tok = data::make_byte_tokenizer();
  const data::SyntheticTasks tasks({"sentiment"}, 13);
  const auto reviews = tasks.reviews(2000, 0);
  auto writer = review_writer(*tok, reviews, 150);

  torch::manual_seed(6);
  auto cclm = std::make_shared<models::CausalLM>(testing::tiny_reward_spec());
  const int64_t plus = tok->encode("+").at(0);
  const int64_t minus = tok->encode("-").at(0);
  LabelledData data;
  data.train = tokenize_labelled(reviews, *tok, testing::reward_tokenizer_config(),
                                 testing::reward_data_config());
  data.eval = tokenize_labelled(tasks.reviews(200, 1), *tok, testing::reward_tokenizer_config(),
                                testing::reward_data_config());
  GediConfig config;
  config.set_gen_weight(0.8);
  config.set_learn_logit_scale(true);
  ClassConditionalLmTraining training(cclm, tok->pad_id(), plus, minus, std::move(data), config);
  testing::train_steps(training, training.num_train(), 150, 32, 3e-3);
  const auto metrics = training.evaluate();
  std::cout << "[ gedi ] class-conditional LM: held-out class accuracy "
            << metrics.at("eval/accuracy") << ", NLL per token " << metrics.at("eval/gen_nll")
            << ", logit scale " << metrics.at("eval/logit_scale") << "\n";
  EXPECT_GE(metrics.at("eval/accuracy"), 0.95);
  cclm->eval();

  const std::vector<std::string> prompts(16, "review:");
  const auto positive_share = [&](const std::vector<std::vector<std::string>>& texts) {
    double positive = 0, count = 0;
    for (const auto& per_prompt : texts) {
      for (const auto& t : per_prompt) positive += data::SyntheticTasks::is_positive(t), ++count;
    }
    return positive / count;
  };
  const auto gedi = [&](int64_t desired, int64_t anti) {
    rollout::GediOptions o;
    o.desired_code = desired;
    o.anti_code = anti;
    o.posterior.logit_scale = training.model().logit_scale().item<double>();
    return std::make_shared<rollout::GediGuidance>(
        std::make_shared<const models::DecoderWeights>(*cclm), o, 32, 48);
  };
  const double plain = positive_share(sample(*writer, tok, prompts, 4, {}));
  const double to_positive = positive_share(sample(*writer, tok, prompts, 4, {gedi(plus, minus)}));
  const double to_negative = positive_share(sample(*writer, tok, prompts, 4, {gedi(minus, plus)}));
  std::cout << "[ gedi ] positive share of 64 reviews: unguided " << plain << ", steered positive "
            << to_positive << ", steered negative " << to_negative << "\n";
  // The writer writes both kinds (and some with no net sentiment, counted as not positive).
  EXPECT_GT(plain, 0.1);
  EXPECT_LT(plain, 0.9);
  EXPECT_GE(to_positive, 0.9);
  EXPECT_LE(to_negative, 0.1);
}

}  // namespace
}  // namespace rudder::algorithms
