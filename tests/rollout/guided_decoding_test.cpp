// GenARM and GeDi guidance in the engine give, token for token, what the decoding rules give
// when every step is recomputed from full forwards of the models involved, also when rows
// join late and others retire (the guidance caches follow the engine's slots).
#include "rollout/guided_decoding.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "models/causal_lm.h"
#include "models/decoder.h"
#include "rollout/local_engine.h"
#include "tests/support/tensor_testing.h"

namespace rudder::rollout {
namespace {

std::unique_ptr<models::CausalLM> random_model(int64_t hidden, double scale) {
  models::ModelSpec s;
  s.vocab_size = 260;
  s.hidden_size = hidden;
  s.num_layers = 2;
  s.num_heads = 4;
  s.num_kv_heads = 2;
  s.head_dim = hidden / 4;
  s.intermediate_size = 2 * hidden;
  s.max_positions = 64;
  s.tie_word_embeddings = true;
  auto m = std::make_unique<models::CausalLM>(s);
  m->eval();
  torch::NoGradGuard no_grad;
  for (auto& p : m->parameters()) p.mul_(scale);
  return m;
}

// Log-probs [V] of the next token after `ids` under `model`.
at::Tensor next_logp(models::CausalLM& model, const std::vector<int64_t>& ids) {
  torch::NoGradGuard no_grad;
  const auto T = static_cast<int64_t>(ids.size());
  return model
      .forward({torch::tensor(ids).unsqueeze(0), torch::ones({1, T}, torch::kLong),
                torch::arange(T).unsqueeze(0)})[0][T - 1]
      .log_softmax(-1);
}

// Log-likelihood of ids[from..] given the tokens before each, under `model`.
double log_likelihood(models::CausalLM& model, const std::vector<int64_t>& ids, size_t from) {
  torch::NoGradGuard no_grad;
  const auto T = static_cast<int64_t>(ids.size());
  const at::Tensor logp =
      model
          .forward({torch::tensor(ids).unsqueeze(0), torch::ones({1, T}, torch::kLong),
                    torch::arange(T).unsqueeze(0)})[0]
          .log_softmax(-1);
  double sum = 0;
  for (size_t j = from; j < ids.size(); ++j) sum += logp[j - 1][ids[j]].item<double>();
  return sum;
}

std::vector<GenerateInput> greedy(const std::vector<std::vector<int64_t>>& prompts, uint32_t len) {
  std::vector<GenerateInput> out;
  for (const auto& p : prompts) {
    GenerateInput in;
    in.prompt = p;
    in.sampling.set_max_new_tokens(len + static_cast<uint32_t>(out.size()));  // rows end apart
    in.sampling.set_temperature(0.0);
    in.sampling.set_top_p(1.0);
    in.sampling.set_repetition_penalty(1.0);
    out.push_back(in);
  }
  return out;
}

const std::vector<std::vector<int64_t>> kPrompts = {{72, 105}, {1, 2, 3, 4, 5, 6}, {200}, {9, 9}};

TEST(GenarmGuidance, MatchesTheRuleRecomputedFromFullForwards) {
  torch::manual_seed(21);
  auto base = random_model(32, 5.0);
  auto arm = random_model(16, 5.0);  // a smaller ARM guides a larger base
  const std::vector<double> alphas = {1.5};
  LocalEngineOptions o;
  o.max_batch = 2;
  o.max_length = 32;
  o.guidance.push_back(std::make_shared<GenarmGuidance>(
      std::vector<std::shared_ptr<const models::DecoderWeights>>{
          std::make_shared<models::DecoderWeights>(*arm)},
      alphas, o.max_batch, o.max_length));
  LocalEngine engine(*base, o);
  const auto out = engine.generate(greedy(kPrompts, 5));
  int64_t differs = 0;  // steps where guidance changed the greedy choice
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    std::vector<int64_t> seq = kPrompts[i];
    for (const int64_t token : out[i].samples[0].tokens) {
      const at::Tensor b = next_logp(*base, seq);
      const at::Tensor guided = genarm_combine(b, next_logp(*arm, seq).unsqueeze(0), {alphas, 1.0});
      ASSERT_EQ(token, guided.argmax().item<int64_t>()) << "prompt " << i << " at " << seq.size();
      differs += b.argmax().item<int64_t>() != token;
      seq.push_back(token);
    }
  }
  EXPECT_GT(differs, 0) << "the guidance never changed a choice: the test would not see it";
}

TEST(GediGuidance, MatchesTheRuleRecomputedFromFullForwards) {
  torch::manual_seed(22);
  auto base = random_model(32, 5.0);
  auto cclm = random_model(16, 5.0);
  GediOptions g;
  g.desired_code = 256;
  g.anti_code = 257;
  g.combine.omega = 10.0;
  LocalEngineOptions o;
  o.max_batch = 2;
  o.max_length = 32;
  o.guidance.push_back(std::make_shared<GediGuidance>(
      std::make_shared<models::DecoderWeights>(*cclm), g, o.max_batch, o.max_length));
  LocalEngine engine(*base, o);
  const auto out = engine.generate(greedy(kPrompts, 5));
  int64_t differs = 0;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    std::vector<int64_t> seq = kPrompts[i];
    for (const int64_t token : out[i].samples[0].tokens) {
      std::vector<int64_t> desired = {256}, anti = {257};
      desired.insert(desired.end(), seq.begin(), seq.end());
      anti.insert(anti.end(), seq.begin(), seq.end());
      const auto scored = static_cast<double>(seq.size() + 1);
      const at::Tensor posterior = gedi_posterior(next_logp(*cclm, desired), next_logp(*cclm, anti),
                                                  torch::tensor(log_likelihood(*cclm, desired, 1)),
                                                  torch::tensor(log_likelihood(*cclm, anti, 1)),
                                                  torch::tensor(scored), g.posterior);
      const at::Tensor b = next_logp(*base, seq);
      const at::Tensor guided = gedi_combine(b, posterior.to(torch::kFloat), g.combine).logits;
      ASSERT_EQ(token, guided.argmax().item<int64_t>()) << "prompt " << i << " at " << seq.size();
      differs += b.argmax().item<int64_t>() != token;
      seq.push_back(token);
    }
  }
  EXPECT_GT(differs, 0) << "the guidance never changed a choice: the test would not see it";
}

TEST(GuidanceLimits, RefusesMismatchedModelsAndCodes) {
  torch::manual_seed(23);
  auto arm = random_model(16, 1.0);
  auto weights = std::make_shared<models::DecoderWeights>(*arm);
  EXPECT_THROW(GenarmGuidance({}, {}, 2, 16), core::InvalidArgument);
  EXPECT_THROW(GenarmGuidance({weights}, {1.0, 2.0}, 2, 16), core::InvalidArgument);
  GediOptions same;
  same.desired_code = same.anti_code = 5;
  EXPECT_THROW(GediGuidance(weights, same, 2, 16), core::InvalidArgument);
  GediOptions outside;
  outside.desired_code = 5;
  outside.anti_code = 999;
  EXPECT_THROW(GediGuidance(weights, outside, 2, 16), core::InvalidArgument);
}

}  // namespace
}  // namespace rudder::rollout
