#include "models/chunked_logprobs.h"

#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/causal_lm.h"
#include "models/hf_io.h"
#include "models/logprobs.h"
#include "tests/support/tensor_testing.h"
#include "tests/support/test_support.h"
#include "tests/support/tiny_models.h"

namespace rudder::models {
namespace {

namespace fs = std::filesystem;
using testing::expect_tensor_near;

// The bound for float32: the chunked path (float32 throughout) against the full float32 logits
// with the softmax taken in float64. (The full path in float32 is itself up to ~2.5e-5 off in
// the entropy at 151k tokens, where the chunked one stays within ~5e-6.)
constexpr double kAtol = 1e-5;
// Parameter gradients sum over every position: the BLAS's blocking decides their rounding
// (MKL's differs from OpenBLAS's by up to ~1.2e-5 on the embedding's), so they get a relative
// term beside kAtol.
constexpr double kGradRtol = 1e-4;
constexpr int64_t kQwen3Vocab = 151669;

// log-probs and entropy [N] of targets [N] from full logits [N, V] (the path users write), the
// softmax in float64.
std::pair<at::Tensor, at::Tensor> full_scores(const at::Tensor& logits, const at::Tensor& targets) {
  const at::Tensor logp = torch::log_softmax(logits.to(torch::kDouble), -1);
  return {logp.gather(1, targets.unsqueeze(1)).squeeze(1), -(logp.exp() * logp).sum(1)};
}

class ChunkedLogprobsTest : public testing::SeededTest {};

// Values and gradients (hidden, weight, bias) of a loss mixing log-probs and entropy.
TEST_F(ChunkedLogprobsTest, MatchesFullLogitsAtQwen3Vocabulary) {
  const int64_t n = 13, h = 16;
  for (const bool with_bias : {false, true}) {
    const at::Tensor hidden = torch::randn({n, h}).requires_grad_();
    const at::Tensor weight = (torch::randn({kQwen3Vocab, h}) * 0.5).requires_grad_();
    const at::Tensor bias =
        with_bias ? (torch::randn({kQwen3Vocab}) * 0.1).requires_grad_() : at::Tensor();
    const at::Tensor targets = torch::randint(0, kQwen3Vocab, {n});
    const at::Tensor a = torch::randn({n}), b = torch::randn({n});

    ChunkedScoreOptions options;
    options.entropy = true;
    options.chunk_elements = 4 * kQwen3Vocab;  // 4 tokens a chunk: 4 chunks, the last short
    const TokenScores got = chunked_token_scores(hidden, {weight, bias}, targets, options);
    const at::Tensor ce = chunked_cross_entropy(hidden, {weight, bias}, targets, options);
    const auto grads_got =
        torch::autograd::grad({(got.logprobs * a).sum() + (got.entropy * b).sum() + ce},
                              with_bias ? std::vector<at::Tensor>{hidden, weight, bias}
                                        : std::vector<at::Tensor>{hidden, weight});

    const at::Tensor logits =
        with_bias ? torch::addmm(bias, hidden, weight.t()) : torch::mm(hidden, weight.t());
    const auto [logp, entropy] = full_scores(logits, targets);
    const at::Tensor ce_full =
        torch::nn::functional::cross_entropy(logits.to(torch::kDouble), targets);
    const auto grads_full = torch::autograd::grad(
        {(logp * a.to(torch::kDouble)).sum() + (entropy * b.to(torch::kDouble)).sum() + ce_full},
        with_bias ? std::vector<at::Tensor>{hidden, weight, bias}
                  : std::vector<at::Tensor>{hidden, weight});

    const std::string label = with_bias ? "with bias: " : "no bias: ";
    expect_tensor_near(got.logprobs, logp, kAtol, label + "log-probs");
    expect_tensor_near(got.entropy, entropy, kAtol, label + "entropy");
    expect_tensor_near(ce, ce_full, kAtol, label + "cross-entropy");
    expect_tensor_near(grads_got[0], grads_full[0], kAtol, label + "d hidden");
    expect_tensor_near(grads_got[1], grads_full[1], kAtol, label + "d weight");
    if (with_bias) expect_tensor_near(grads_got[2], grads_full[2], kAtol, label + "d bias");
  }
}

TEST_F(ChunkedLogprobsTest, Bf16RunsTheSoftmaxInFloat32) {
  const at::Tensor hidden = torch::randn({6, 16}).to(torch::kBFloat16).requires_grad_();
  const at::Tensor weight = torch::randn({1000, 16}).to(torch::kBFloat16).requires_grad_();
  const at::Tensor targets = torch::randint(0, 1000, {6});
  ChunkedScoreOptions options;
  options.chunk_elements = 2000;
  const TokenScores got = chunked_token_scores(hidden, {weight, {}}, targets, options);
  ASSERT_EQ(got.logprobs.scalar_type(), torch::kFloat);
  const auto [logp, entropy] = full_scores(torch::mm(hidden, weight.t()), targets);
  expect_tensor_near(got.logprobs, logp, 1e-4, "bf16 log-probs");  // same bf16 logits
  expect_tensor_near(got.logprobs.sum(), logp.sum(), 1e-4, "bf16 log-prob sum");
  const auto g = torch::autograd::grad({got.logprobs.sum()}, {hidden, weight});
  const auto g_full = torch::autograd::grad({logp.sum()}, {hidden, weight});
  EXPECT_EQ(g[1].scalar_type(), torch::kBFloat16);
  expect_tensor_near(g[0], g_full[0], 0.05, "bf16 d hidden");
  expect_tensor_near(g[1], g_full[1], 0.05, "bf16 d weight");
}

TEST_F(ChunkedLogprobsTest, RejectsMismatchedShapes) {
  const at::Tensor w = torch::randn({10, 4});
  EXPECT_ANY_THROW(
      chunked_token_scores(torch::randn({3, 5}), {w, {}}, torch::zeros({3}, torch::kLong)));
  EXPECT_ANY_THROW(
      chunked_token_scores(torch::randn({3, 4}), {w, {}}, torch::zeros({2}, torch::kLong)));
}

// score_tokens on a model against token_logprobs of its full logits: values where the mask is
// 1 (0 elsewhere) and every parameter's gradient.
void expect_model_scores_match(CausalLM& model, const at::Tensor& ids, const at::Tensor& mask,
                               const ChunkedScoreOptions& options, const std::string& label) {
  const at::Tensor pos = torch::arange(ids.size(1)).expand_as(ids).contiguous();
  const at::Tensor attn = torch::ones_like(ids);
  const at::Tensor a = torch::randn(ids.sizes()), b = torch::randn(ids.sizes());
  const auto params = model.parameters();
  const at::Tensor a64 = a.to(torch::kDouble), b64 = b.to(torch::kDouble);

  ChunkedScoreOptions with_entropy = options;
  with_entropy.entropy = true;
  const TokenScores got = score_tokens(model, {ids, attn, pos}, mask, with_entropy);
  const auto g_got =
      torch::autograd::grad({(got.logprobs * a).sum() + (got.entropy * b).sum()}, params);

  const at::Tensor logits = model.forward({ids, attn, pos});  // [B, T, V]
  const int64_t B = ids.size(0), T = ids.size(1), V = logits.size(-1);
  const auto [lp_flat, ent_flat] = full_scores(  // position t - 1 predicts token t
      logits.narrow(1, 0, T - 1).reshape({-1, V}), ids.narrow(1, 1, T - 1).reshape(-1));
  const at::Tensor zero = torch::zeros({B, 1}, torch::kDouble);
  const at::Tensor m = mask.to(torch::kDouble);
  const at::Tensor logp = torch::cat({zero, lp_flat.view({B, T - 1})}, 1) * m;
  const at::Tensor entropy = torch::cat({zero, ent_flat.view({B, T - 1})}, 1) * m;
  const auto g_full = torch::autograd::grad({(logp * a64).sum() + (entropy * b64).sum()}, params);

  expect_tensor_near(got.logprobs, logp, kAtol, label + " log-probs");
  expect_tensor_near(got.entropy, entropy, kAtol, label + " entropy");
  for (size_t i = 0; i < params.size(); ++i)
    testing::expect_tensor_close(g_got[i], g_full[i], kAtol, kGradRtol,
                                 label + " gradient " + std::to_string(i));
}

TEST_F(ChunkedLogprobsTest, ScoresTokensOfATiny151kVocabularyModel) {
  for (const bool tied : {true, false}) {
    ModelSpec spec = testing::tiny_llama(16, 1);
    spec.vocab_size = kQwen3Vocab;
    spec.tie_word_embeddings = tied;
    CausalLM model(spec);
    const at::Tensor ids = torch::randint(0, kQwen3Vocab, {2, 6});
    const at::Tensor mask = torch::tensor({{0, 0, 1, 1, 1, 0}, {0, 1, 1, 1, 1, 1}});
    ChunkedScoreOptions options;
    options.chunk_elements = 3 * kQwen3Vocab;
    expect_model_scores_match(model, ids, mask, options, tied ? "tied" : "untied");
  }
}

// A batch whose logits fit in one chunk is scored from its whole logits: the log-probs and
// every parameter's gradient are those of token_logprobs over forward()'s logits, bit for bit,
// so training at such sizes is as without chunking. Its entropy matches too (within kAtol).
TEST_F(ChunkedLogprobsTest, ABatchWithinOneChunkIsScoredAsItsFullLogitsBitForBit) {
  for (const bool tied : {true, false}) {
    ModelSpec spec = testing::tiny_llama(16, 1);
    spec.tie_word_embeddings = tied;
    CausalLM model(spec);
    const std::string label = tied ? "tied" : "untied";
    const at::Tensor ids = torch::randint(0, spec.vocab_size, {3, 7});
    const at::Tensor pos = torch::arange(7).expand_as(ids).contiguous();
    const at::Tensor attn = torch::ones_like(ids);
    const at::Tensor mask = (torch::rand({3, 7}) > 0.3).to(torch::kLong);
    const auto params = model.parameters();

    ChunkedScoreOptions one_chunk;
    one_chunk.chunk_elements = ids.numel() * spec.vocab_size;
    one_chunk.entropy = true;
    const TokenScores got = score_tokens(model, {ids, attn, pos}, mask, one_chunk);
    const auto g_got = torch::autograd::grad({masked_sum(got.logprobs, mask).sum()}, params, {},
                                             /*retain_graph=*/true);  // the entropy's below

    const at::Tensor full = token_logprobs(model.forward({ids, attn, pos}), ids);
    const auto g_full = torch::autograd::grad({masked_sum(full, mask).sum()}, params);
    at::Tensor kept = mask.to(torch::kBool);
    kept.narrow(1, 0, 1).fill_(false);
    EXPECT_TRUE(torch::equal(got.logprobs, full.masked_fill(kept.logical_not(), 0.0))) << label;
    for (size_t i = 0; i < params.size(); ++i)
      EXPECT_TRUE(torch::equal(g_got[i], g_full[i])) << label << " gradient " << i;

    ChunkedScoreOptions chunked = one_chunk;
    chunked.chunk_elements -= 1;  // one element over: the chunked path
    const TokenScores other = score_tokens(model, {ids, attn, pos}, mask, chunked);
    expect_tensor_near(got.logprobs, other.logprobs, kAtol, label + " log-probs, chunked");
    expect_tensor_near(got.entropy, other.entropy, kAtol, label + " entropy, chunked");
    const at::Tensor b = torch::randn({3, 7});  // the entropy's gradient, against the chunked one
    const auto g_one = torch::autograd::grad({(got.entropy * b).sum()}, params);
    const auto g_chunked = torch::autograd::grad({(other.entropy * b).sum()}, params);
    for (size_t i = 0; i < params.size(); ++i)
      testing::expect_tensor_close(g_one[i], g_chunked[i], kAtol, kGradRtol,
                                   label + " entropy gradient " + std::to_string(i));
    EXPECT_GT(got.entropy.masked_select(kept).min().item<double>(), 0.0) << label;
    EXPECT_TRUE(torch::equal(got.entropy.masked_select(kept.logical_not()),
                             torch::zeros({(~kept).sum().item<int64_t>()})))
        << label;
  }
}

TEST(golden_models, ChunkedScoresMatchFullLogits) {
  const auto dirs = testing::golden_model_dirs();
  ASSERT_FALSE(dirs.empty()) << "no golden models under " << testing::golden_dir();
  torch::manual_seed(7);
  for (const std::string& dir : dirs) {
    const std::string name = fs::path(dir).filename().string();
    const auto model = load_hf_model(dir);
    const int64_t vocab = model->spec().vocab_size;
    const at::Tensor ids = torch::randint(0, vocab, {2, 9});
    const at::Tensor mask = torch::ones({2, 9}, torch::kLong);
    ChunkedScoreOptions options;
    options.chunk_elements = 5 * vocab;  // 5 tokens a chunk
    expect_model_scores_match(*model, ids, mask, options, name);
  }
}

}  // namespace
}  // namespace rudder::models
