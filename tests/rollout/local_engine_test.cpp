// The local engine: greedy decoding equals argmax over full forwards; a request's tokens and
// log-probs do not depend on what shares the batch (mixed prompt lengths, rows finishing at
// different times, requests joining as slots free up); the processors and stop rules behave as
// documented; bad requests are refused without disturbing the engine.
#include "rollout/local_engine.h"

#include <cmath>
#include <limits>
#include <set>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "tests/support/tensor_testing.h"
#include "tests/support/tiny_models.h"

namespace rudder::rollout {
namespace {

// Engine against engine (the same arithmetic, other batch company).
constexpr double kTol = 1e-5;
// Engine against CausalLM::forward: two float32 implementations that order their arithmetic
// differently (fused projections, folded norm weights), on logits of magnitude ~10.
constexpr double kCrossTol = 1e-4;

models::ModelSpec tiny_spec() { return testing::tiny_llama(32, 2, 2, 96); }

class LocalEngineTest : public testing::SeededTest {
 protected:
  void SetUp() override {
    SeededTest::SetUp();
    model = std::make_unique<models::CausalLM>(tiny_spec());
    model->eval();
    torch::NoGradGuard no_grad;
    // Larger weights than the initialization, so the next-token distributions are peaked
    // and varied rather than near-uniform.
    for (auto& p : model->parameters()) p.mul_(6.0);
  }
  LocalEngine engine(int64_t max_batch, int64_t eos = -1) {
    LocalEngineOptions options;
    options.max_batch = max_batch;
    options.eos_id = eos;
    options.tokenizer = data::make_byte_tokenizer();
    return LocalEngine(*model, options);
  }
  at::Tensor full_logits(const std::vector<int64_t>& ids) {
    torch::NoGradGuard no_grad;
    const auto T = static_cast<int64_t>(ids.size());
    return model
        ->forward({torch::tensor(ids).unsqueeze(0), torch::ones({1, T}, torch::kLong),
                   torch::arange(T).unsqueeze(0)})
        .squeeze(0);
  }
  std::unique_ptr<models::CausalLM> model;
};

GenerateInput request(std::vector<int64_t> prompt, uint32_t max_new, double temperature,
                      uint64_t seed, uint32_t n = 1) {
  GenerateInput in;
  in.prompt = std::move(prompt);
  in.sampling.set_max_new_tokens(max_new);
  in.sampling.set_temperature(temperature);
  in.sampling.set_top_p(1.0);
  in.sampling.set_repetition_penalty(1.0);
  in.sampling.set_seed(seed);
  in.n = n;
  return in;
}

TEST_F(LocalEngineTest, GreedyEqualsArgmaxOverFullForwards) {
  auto e = engine(4);
  const std::vector<std::vector<int64_t>> prompts = {{72, 101, 108}, {1, 2, 3, 4, 5, 6, 7}, {9}};
  std::vector<GenerateInput> requests;
  for (const auto& p : prompts) requests.push_back(request(p, 10, 0.0, 1));
  const auto out = e.generate(requests);
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<int64_t> seq = prompts[i];
    const Sample& s = out[i].samples.at(0);
    ASSERT_EQ(s.tokens.size(), 10u);
    EXPECT_EQ(s.finish_reason, FinishReason::kLength);
    for (size_t t = 0; t < s.tokens.size(); ++t) {
      const at::Tensor logp = full_logits(seq)[seq.size() - 1].log_softmax(-1);
      EXPECT_EQ(s.tokens[t], logp.argmax().item<int64_t>()) << "prompt " << i << " step " << t;
      EXPECT_NEAR(s.policy_logprobs[t], logp[s.tokens[t]].item<float>(), kCrossTol);
      EXPECT_EQ(s.logprobs[t], 0.0f);  // a greedy choice is a point mass
      seq.push_back(s.tokens[t]);
    }
  }
}

TEST_F(LocalEngineTest, ARequestGetsTheSameSamplesWhateverSharesTheBatch) {
  // 7 requests through 3 slots: mixed prompt lengths, n > 1, EOS ending rows at different
  // times, and waiting requests taking freed slots.
  const int64_t eos = 7;
  std::vector<GenerateInput> requests;
  for (int i = 0; i < 7; ++i) {
    std::vector<int64_t> prompt;
    for (int t = 0; t <= (i * 5) % 11; ++t) prompt.push_back((i * 31 + t * 17) % 256);
    requests.push_back(request(prompt, 6 + 3 * (i % 4), 1.0, 100 + i, 1 + i % 3));
  }
  requests[2].sampling.set_temperature(0.0);
  requests[4].sampling.set_top_k(5);
  requests[5].sampling.set_top_p(0.7);
  auto together = engine(3, eos).generate(requests);

  std::set<size_t> lengths;
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto alone = engine(3, eos).generate({requests[i]});
    ASSERT_EQ(together[i].samples.size(), requests[i].n);
    for (size_t j = 0; j < requests[i].n; ++j) {
      const Sample& a = alone[0].samples[j];
      const Sample& b = together[i].samples[j];
      EXPECT_EQ(a.tokens, b.tokens) << "request " << i << " sample " << j;
      ASSERT_EQ(a.logprobs.size(), b.logprobs.size());
      for (size_t t = 0; t < a.logprobs.size(); ++t) {
        EXPECT_NEAR(a.logprobs[t], b.logprobs[t], kTol);
        EXPECT_NEAR(a.policy_logprobs[t], b.policy_logprobs[t], kTol);
      }
      EXPECT_EQ(a.finish_reason, b.finish_reason);
      lengths.insert(b.tokens.size());
    }
  }
  EXPECT_GE(lengths.size(), 3u) << "rows should finish at different times";
  // Samples of one request differ (each has its own generator).
  EXPECT_NE(together[1].samples[0].tokens, together[1].samples[1].tokens);
}

// A request whose caller gives up leaves at the next step: its rows free their slots for the
// waiting request, which then samples what it samples alone, and its callback never runs.
TEST_F(LocalEngineTest, ACancelledRequestFreesItsSlotsAndIsNeverAnswered) {
  auto e = engine(2);
  bool give_up = false;
  int answered = 0;
  std::vector<GenerateOutput> waiting_out;
  e.submit(
      request({1, 2, 3}, 60, 1.0, 11, 2), [&](GenerateOutput) { ++answered; },
      [&] { return give_up; });
  e.submit(request({4, 5}, 5, 1.0, 12),
           [&](GenerateOutput o) { waiting_out.push_back(std::move(o)); });
  for (int i = 0; i < 3; ++i) e.step();
  EXPECT_EQ(e.running(), 2);
  EXPECT_EQ(e.waiting(), 1);
  give_up = true;
  int steps = 0;
  while (e.busy()) {
    e.step();
    ++steps;
  }
  EXPECT_EQ(answered, 0);
  ASSERT_EQ(waiting_out.size(), 1u);
  EXPECT_LE(steps, 8) << "the waiting request's 5 tokens, not the cancelled one's 57 more";
  const auto alone = engine(2).generate({request({4, 5}, 5, 1.0, 12)});
  EXPECT_EQ(waiting_out[0].samples[0].tokens, alone[0].samples[0].tokens);

  // Cancelled with some samples running and the rest waiting for a slot: all of them leave.
  bool half = false;
  e.submit(
      request({6, 7}, 30, 1.0, 13, 3), [&](GenerateOutput) { ++answered; }, [&] { return half; });
  e.step();
  EXPECT_EQ(e.running(), 2);
  EXPECT_EQ(e.waiting(), 1);
  half = true;
  e.step();
  EXPECT_FALSE(e.busy());
  EXPECT_EQ(answered, 0);

  // Cancelled while still queued: it never runs.
  e.submit(
      request({1}, 4, 0.0, 1), [&](GenerateOutput) { ++answered; }, [] { return true; });
  e.step();
  EXPECT_FALSE(e.busy());
  EXPECT_EQ(answered, 0);
}

TEST_F(LocalEngineTest, SampledLogprobsFollowTheProcessedDistribution) {
  auto e = engine(2);
  GenerateInput in = request({5, 6, 7}, 1, 0.8, 42, 40);
  in.sampling.set_top_k(3);
  const auto out = e.generate({in});
  const at::Tensor logits = full_logits({5, 6, 7})[2];
  const at::Tensor top = std::get<1>(logits.topk(3));
  const at::Tensor kept = (logits.index_select(0, top) / 0.8).log_softmax(-1);
  const at::Tensor policy = (logits / 0.8).log_softmax(-1);
  std::set<int64_t> seen;
  for (const Sample& s : out[0].samples) {
    const int64_t tok = s.tokens[0];
    const auto pos = (top == tok).nonzero();
    ASSERT_EQ(pos.size(0), 1) << "token " << tok << " outside the top 3";
    EXPECT_NEAR(s.logprobs[0], kept[pos.item<int64_t>()].item<float>(), kCrossTol);
    EXPECT_NEAR(s.policy_logprobs[0], policy[tok].item<float>(), kCrossTol);
    seen.insert(tok);
  }
  EXPECT_GE(seen.size(), 2u);
}

TEST_F(LocalEngineTest, StopRulesAndMinNewTokens) {
  auto e = engine(4);
  // Greedy continuation, then stop on its 4th token (as a token id, then as text).
  const auto free_run = e.generate({request({65, 66}, 12, 0.0, 1)})[0].samples[0];
  const int64_t fourth = free_run.tokens[3];
  GenerateInput by_token = request({65, 66}, 12, 0.0, 1);
  by_token.sampling.add_stop_token_ids(static_cast<uint32_t>(fourth));
  GenerateInput by_text = request({65, 66}, 12, 0.0, 1);
  by_text.sampling.add_stop(std::string(1, static_cast<char>(fourth)));
  GenerateInput as_eos = request({65, 66}, 12, 0.0, 1);
  const auto out = e.generate({by_token, by_text});
  const auto first = std::find(free_run.tokens.begin(), free_run.tokens.end(), fourth);
  const auto cut = static_cast<size_t>(first - free_run.tokens.begin());
  EXPECT_EQ(out[0].samples[0].finish_reason, FinishReason::kStop);
  EXPECT_EQ(out[0].samples[0].tokens.size(), cut + 1);
  EXPECT_EQ(out[1].samples[0].finish_reason, FinishReason::kStop);
  EXPECT_EQ(out[1].samples[0].text, free_run.text.substr(0, cut));

  // The same token as EOS ends the sample; min_new_tokens bans it until then; ignore_eos
  // generates through it.
  auto with_eos = engine(4, fourth);
  GenerateInput late = as_eos;
  late.sampling.set_min_new_tokens(static_cast<uint32_t>(cut + 2));
  GenerateInput through = as_eos;
  through.sampling.set_ignore_eos(true);
  const auto eos_out = with_eos.generate({as_eos, late, through});
  EXPECT_EQ(eos_out[0].samples[0].finish_reason, FinishReason::kEos);
  EXPECT_EQ(eos_out[0].samples[0].tokens.size(), cut + 1);
  for (size_t t = 0; t + 1 < late.sampling.min_new_tokens(); ++t) {
    EXPECT_NE(eos_out[1].samples[0].tokens[t], fourth) << "EOS before min_new_tokens";
  }
  EXPECT_EQ(eos_out[2].samples[0].tokens.size(), 12u);
  EXPECT_EQ(eos_out[2].samples[0].finish_reason, FinishReason::kLength);
}

TEST_F(LocalEngineTest, ScoreGivesContinuationLogprobs) {
  auto e = engine(2);
  const auto out = e.score({{{3, 4, 5}, {6, 7}}, {{9}, {10, 11, 12}}});
  ASSERT_EQ(out.size(), 2u);
  const at::Tensor a = full_logits({3, 4, 5, 6, 7}).log_softmax(-1);
  EXPECT_NEAR(out[0][0], a[2][6].item<float>(), kCrossTol);
  EXPECT_NEAR(out[0][1], a[3][7].item<float>(), kCrossTol);
  const at::Tensor b = full_logits({9, 10, 11, 12}).log_softmax(-1);
  ASSERT_EQ(out[1].size(), 3u);
  EXPECT_NEAR(out[1][2], b[2][12].item<float>(), kCrossTol);
}

TEST_F(LocalEngineTest, BadRequestsAreRefusedAndTheEngineCarriesOn) {
  auto e = engine(2);
  LocalEngineOptions bare;
  LocalEngine no_tokenizer(*model, bare);
  GenerateInput text_prompt;
  text_prompt.prompt_text = "hi";
  EXPECT_THROW(no_tokenizer.generate({text_prompt}), core::InvalidArgument);
  EXPECT_THROW(e.generate({request({}, 4, 1.0, 1)}), core::InvalidArgument);
  EXPECT_THROW(e.generate({request({1, 2}, 95, 1.0, 1)}), core::InvalidArgument);  // too long
  EXPECT_THROW(e.generate({request({1, 999}, 4, 1.0, 1)}), core::InvalidArgument);
  GenerateInput bad_p = request({1, 2}, 4, 1.0, 1);
  bad_p.sampling.set_top_p(0.0);
  EXPECT_THROW(e.generate({request({1}, 4, 1.0, 1), bad_p}), core::InvalidArgument);
  EXPECT_FALSE(e.busy());
  EXPECT_THROW(e.score({{{1}, {}}}), core::InvalidArgument);
  const auto ok = e.generate({request({1, 2}, 4, 1.0, 1)});
  EXPECT_EQ(ok[0].samples[0].tokens.size(), 4u);
  EXPECT_EQ(ok[0].policy_version, "0");
}

// Parameters at the edges of float32: a temperature below 1e-5 samples greedily, a top_p that
// rounds to 0 keeps the most likely token, and a repetition penalty within its bounds leaves
// every score finite; the samples are greedy's, with finite log-probs. Beyond the bounds, 400.
TEST_F(LocalEngineTest, ExtremeSamplingParametersStayFiniteOrAreRefused) {
  auto e = engine(4);
  const std::vector<int64_t> prompt = {72, 101, 108, 72, 101};
  const auto greedy = e.generate({request(prompt, 8, 0.0, 1)})[0].samples[0].tokens;
  GenerateInput cold = request(prompt, 8, 1e-38, 1);
  GenerateInput narrow = request(prompt, 8, 1.0, 2);
  narrow.sampling.set_top_p(1e-46);
  GenerateInput penalized = request(prompt, 8, 1.0, 3);
  penalized.sampling.set_repetition_penalty(1e-6);
  penalized.sampling.set_top_p(1e-46);
  const auto out = e.generate({cold, narrow, penalized});
  for (size_t i = 0; i < out.size(); ++i) {
    const Sample& s = out[i].samples.at(0);
    ASSERT_EQ(s.tokens.size(), 8u) << "request " << i;
    if (i < 2) {
      EXPECT_EQ(s.tokens, greedy) << "request " << i;
    }
    for (size_t t = 0; t < s.tokens.size(); ++t) {
      EXPECT_TRUE(std::isfinite(s.logprobs[t]) && std::isfinite(s.policy_logprobs[t]))
          << "request " << i << " token " << t;
    }
  }
  for (const double penalty : {1e-7, 1e7, 1e-46}) {
    GenerateInput bad = request(prompt, 4, 1.0, 1);
    bad.sampling.set_repetition_penalty(penalty);
    EXPECT_THROW(e.generate({bad}), core::InvalidArgument) << penalty;
  }
  EXPECT_THROW(e.generate({request(prompt, 4, 1e7, 1)}), core::InvalidArgument);
  EXPECT_THROW(e.generate({request(prompt, 4, std::numeric_limits<double>::infinity(), 1)}),
               core::InvalidArgument);
  EXPECT_FALSE(e.busy());
}

// Throws from the first decode step it sees, then behaves.
class FailOnce : public LogitsProcessor {
 public:
  void process(at::Tensor&, const std::vector<RowView>&) override {
    if (!failed_) {
      failed_ = true;
      throw std::runtime_error("injected failure");
    }
  }

 private:
  bool failed_ = false;
};

TEST_F(LocalEngineTest, AFailedStepLeavesTheEngineIdleAndUsable) {
  LocalEngineOptions options;
  options.max_batch = 2;
  options.guidance.push_back(std::make_shared<FailOnce>());
  LocalEngine e(*model, options);
  const std::vector<GenerateInput> requests = {request({1, 2, 3}, 4, 0.0, 1, 2),
                                               request({4, 5}, 4, 0.0, 1)};
  EXPECT_THROW(e.generate(requests), std::runtime_error);
  EXPECT_FALSE(e.busy());
  const auto out = e.generate(requests);
  const auto fresh = engine(2).generate(requests);
  for (size_t i = 0; i < requests.size(); ++i) {
    for (size_t j = 0; j < requests[i].n; ++j) {
      EXPECT_EQ(out[i].samples[j].tokens, fresh[i].samples[j].tokens) << i << " " << j;
    }
  }
}

}  // namespace
}  // namespace rudder::rollout
