// The decoder's prefill and decode steps give CausalLM::forward's logits for every family and
// option (grouped-query attention, q/k/v biases, untied heads, GPT-2, LoRA) and every step path,
// whatever the slots hold beside a sequence; copies, truncation and weight swaps keep the cache
// consistent.
#include "models/decoder.h"

#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "models/causal_lm.h"
#include "models/detail/packed_matmul.h"
#include "models/detail/small_matmul.h"
#include "models/detail/step_graphs.h"
#include "models/lora.h"
#include "proto/rudder.pb.h"
#include "tests/support/tensor_testing.h"

namespace rudder::models {
namespace {

using testing::expect_tensor_near;

constexpr double kTol = 1e-5;

struct Variant {
  const char* name;
  Architecture architecture;
  int64_t kv_heads;
  bool qkv_bias;
  bool tied;
  bool pack = true;  // DecoderWeights' packed projections where the CPU has AVX-512
  StepPath path = StepPath::kAuto;
};

ModelSpec spec_of(const Variant& v) {
  ModelSpec s;
  s.architecture = v.architecture;
  s.model_type = v.architecture == Architecture::kLlama ? "llama" : "gpt2";
  s.vocab_size = 50;
  s.hidden_size = 32;
  s.num_layers = 2;
  s.num_heads = 4;
  s.num_kv_heads = v.kv_heads;
  s.head_dim = 8;
  s.intermediate_size = 48;
  s.max_positions = 64;
  s.qkv_bias = v.qkv_bias;
  s.o_bias = v.qkv_bias;
  s.tie_word_embeddings = v.tied;
  return s;
}

// Logits [T, V] of a whole sequence by one full forward.
at::Tensor full_logits(CausalLM& model, const std::vector<int64_t>& ids) {
  const auto T = static_cast<int64_t>(ids.size());
  return model
      .forward({torch::tensor(ids).unsqueeze(0), torch::ones({1, T}, torch::kLong),
                torch::arange(T).unsqueeze(0)})
      .squeeze(0);
}

class DecoderTest : public testing::SeededTest, public ::testing::WithParamInterface<Variant> {
 protected:
  void SetUp() override {
    SeededTest::SetUp();
    model = std::make_unique<CausalLM>(spec_of(GetParam()));
    model->eval();
    // Non-trivial norm weights and biases, so a misplaced one shows.
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.add_(torch::randn_like(p) * 0.05);
  }
  std::shared_ptr<const DecoderWeights> weights() const {
    return std::make_shared<DecoderWeights>(*model, GetParam().pack);
  }
  std::unique_ptr<CausalLM> model;
};

// Drives `decoders` (on one model, max_length 60) through one script and expects every step's
// logits and every slot's length to agree with the first decoder's: rows of different lengths
// stepping across key windows (16, 32, then 60, the power of two cut to max_length), a fork, a
// truncation, a row leaving (the last moved into its slot) and a slot restarted by a prefill
// between steps.
void expect_the_same_steps(const std::vector<Decoder*>& decoders, double tol) {
  const auto all = [&](const std::function<void(Decoder&)>& f) {
    for (Decoder* d : decoders) f(*d);
  };
  all([](Decoder& d) {
    d.prefill(0, torch::tensor(std::vector<int64_t>{3, 1, 4}), false);
    d.prefill(1, torch::tensor(std::vector<int64_t>{1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9}), false);
    d.prefill(2, torch::tensor(std::vector<int64_t>{2}), false);
  });
  int64_t rows = 3;
  for (int step = 0; step < 40; ++step) {
    if (step == 10) {
      all([](Decoder& d) { d.copy(1, 3); });
      rows = 4;
    } else if (step == 18) {
      all([](Decoder& d) { d.truncate(0, 5); });
    } else if (step == 25) {
      all([](Decoder& d) {
        d.copy(3, 1);
        d.clear(3);
      });
      rows = 3;
    } else if (step == 30) {
      all([](Decoder& d) {
        d.clear(2);
        d.prefill(2, torch::tensor(std::vector<int64_t>{7, 7, 7}), false);
      });
    }
    std::vector<int64_t> next;
    for (int64_t r = 0; r < rows; ++r) next.push_back((step * 11 + r * 5) % 50);
    const at::Tensor want = decoders[0]->step(torch::tensor(next)).cpu();
    for (size_t k = 1; k < decoders.size(); ++k) {
      expect_tensor_near(decoders[k]->step(torch::tensor(next)).cpu(), want, tol,
                         core::str("step ", step, ", decoder ", k));
    }
  }
  for (int64_t slot = 0; slot < 4; ++slot) {
    for (Decoder* d : decoders) EXPECT_EQ(d->length(slot), decoders[0]->length(slot));
  }
  EXPECT_EQ(decoders[0]->length(1), 52);
}

TEST_P(DecoderTest, PrefillThenStepsMatchFullForwards) {
  torch::NoGradGuard no_grad;
  Decoder decoder(weights(), 3, 32, GetParam().path);
  const std::vector<int64_t> prompt = {3, 7, 1, 9, 4};
  std::vector<int64_t> seq = prompt;
  const at::Tensor all = decoder.prefill(0, torch::tensor(prompt), true);
  expect_tensor_near(all, full_logits(*model, seq), kTol, "prefill logits");
  const at::Tensor last = decoder.prefill(1, torch::tensor(prompt), false);
  expect_tensor_near(last, all.narrow(0, 4, 1), kTol, "prefill last logits");
  for (int64_t next : {11, 2, 30, 5}) {
    seq.push_back(next);
    const at::Tensor step = decoder.step(torch::tensor({next, next}));  // slots 0 and 1
    const at::Tensor want = full_logits(*model, seq).narrow(0, seq.size() - 1, 1);
    expect_tensor_near(step.narrow(0, 0, 1), want, kTol, "step logits, slot 0");
    expect_tensor_near(step.narrow(0, 1, 1), want, kTol, "step logits, slot 1");
  }
  EXPECT_EQ(decoder.length(0), 9);
}

// Chunked scores of a prefill: every position's next token against the full forward's
// log-softmax, and a slot left holding the appended tokens.
TEST_P(DecoderTest, PrefillLogprobsMatchTheFullLogSoftmax) {
  torch::NoGradGuard no_grad;
  Decoder decoder(weights(), 2, 32, GetParam().path);
  const std::vector<int64_t> seq = {3, 7, 1, 9, 4, 11, 2};
  const at::Tensor targets = torch::tensor({9, 4, 11, 2});  // after positions 2..5
  const at::Tensor got = decoder.prefill_logprobs(0, torch::tensor(seq), 2, targets);
  const at::Tensor want = torch::log_softmax(full_logits(*model, seq).narrow(0, 2, 4), -1)
                              .gather(1, targets.unsqueeze(1))
                              .squeeze(1);
  expect_tensor_near(got, want, kTol, "prefill log-probs");
  EXPECT_EQ(decoder.length(0), 7);
  EXPECT_THROW(decoder.prefill_logprobs(1, torch::tensor(seq), 5, targets), core::InvalidArgument);
  EXPECT_EQ(
      decoder.prefill_logprobs(1, torch::tensor(seq), 2, torch::empty({0}, torch::kLong)).numel(),
      0);
}

TEST_P(DecoderTest, RowsOfDifferentLengthsStepTogether) {
  torch::NoGradGuard no_grad;
  Decoder decoder(weights(), 4, 40, GetParam().path);
  std::vector<std::vector<int64_t>> seqs = {{1, 2}, {5, 6, 7, 8, 9, 10, 11}, {12}};
  for (size_t b = 0; b < seqs.size(); ++b) decoder.prefill(b, torch::tensor(seqs[b]), false);
  for (int step = 0; step < 5; ++step) {
    std::vector<int64_t> next;
    for (size_t b = 0; b < seqs.size(); ++b) next.push_back((step * 7 + b * 3) % 50);
    const at::Tensor logits = decoder.step(torch::tensor(next));
    for (size_t b = 0; b < seqs.size(); ++b) {
      seqs[b].push_back(next[b]);
      expect_tensor_near(logits.narrow(0, b, 1),
                         full_logits(*model, seqs[b]).narrow(0, seqs[b].size() - 1, 1), kTol,
                         "row of a mixed batch");
    }
  }
}

TEST_P(DecoderTest, PrefillContinuesASlotAndCopiesFork) {
  torch::NoGradGuard no_grad;
  Decoder decoder(weights(), 3, 32, GetParam().path);
  decoder.prefill(0, torch::tensor(std::vector<int64_t>{4, 4, 8}), false);
  decoder.copy(0, 2);
  const at::Tensor more = decoder.prefill(2, torch::tensor(std::vector<int64_t>{1, 2, 3}), true);
  expect_tensor_near(more, full_logits(*model, {4, 4, 8, 1, 2, 3}).narrow(0, 3, 3), kTol,
                     "continued prefill of a forked slot");
  decoder.truncate(2, 3);  // back to the shared prefix, then another branch
  const at::Tensor other = decoder.step(torch::tensor(std::vector<int64_t>{9, 0, 7}));
  expect_tensor_near(other.narrow(0, 0, 1), full_logits(*model, {4, 4, 8, 9}).narrow(0, 3, 1), kTol,
                     "source slot after the fork");
}

TEST_P(DecoderTest, BatchedPrefillMatchesEachRunAlone) {
  torch::NoGradGuard no_grad;
  Decoder decoder(weights(), 3, 32, GetParam().path);
  decoder.prefill(1, torch::tensor(std::vector<int64_t>{5, 5}), false);  // slot 1 continues
  const std::vector<std::vector<int64_t>> runs = {{3, 1, 4, 1, 5}, {9, 2}, {6}};
  const at::Tensor logits = decoder.prefill(
      {0, 1, 2}, {torch::tensor(runs[0]), torch::tensor(runs[1]), torch::tensor(runs[2])});
  ASSERT_EQ(logits.size(0), 3);
  const std::vector<std::vector<int64_t>> whole = {runs[0], {5, 5, 9, 2}, runs[2]};
  for (int64_t j = 0; j < 3; ++j) {
    expect_tensor_near(logits.narrow(0, j, 1),
                       full_logits(*model, whole[j]).narrow(0, whole[j].size() - 1, 1), kTol,
                       "batched prefill run");
    EXPECT_EQ(decoder.length(j), static_cast<int64_t>(whole[j].size()));
  }
  const at::Tensor next = decoder.step(torch::tensor(std::vector<int64_t>{7, 7, 7}));
  for (int64_t j = 0; j < 3; ++j) {
    std::vector<int64_t> seq = whole[j];
    seq.push_back(7);
    expect_tensor_near(next.narrow(0, j, 1), full_logits(*model, seq).narrow(0, seq.size() - 1, 1),
                       kTol, "step after a batched prefill");
  }
  EXPECT_THROW(decoder.prefill({0, 0}, {torch::tensor(runs[1]), torch::tensor(runs[1])}),
               core::InvalidArgument);
}

TEST_P(DecoderTest, StaticStepsMatchEagerAcrossWindowsForksAndRowChanges) {
  torch::NoGradGuard no_grad;
  Decoder eager(weights(), 4, 60, StepPath::kEager);
  Decoder fixed(weights(), 4, 60, StepPath::kStatic);
  Decoder automatic(weights(), 4, 60);
  expect_the_same_steps({&eager, &fixed, &automatic}, kTol);
}

INSTANTIATE_TEST_SUITE_P(
    Families, DecoderTest,
    ::testing::Values(
        Variant{"LlamaGqaTied", Architecture::kLlama, 2, false, true},
        Variant{"LlamaMhaBiasesUntied", Architecture::kLlama, 4, true, false},
        Variant{"Gpt2", Architecture::kGpt2, 4, false, true},
        // [out, in] weights through BLAS and small_matmul, as without AVX-512
        Variant{"LlamaGqaTiedRowMajor", Architecture::kLlama, 2, false, true, false},
        Variant{"LlamaMhaBiasesRowMajor", Architecture::kLlama, 4, true, false, false},
        // positions and lengths on the device, a window of keys, a logits buffer
        Variant{"LlamaGqaTiedStatic", Architecture::kLlama, 2, false, true, true,
                StepPath::kStatic},
        Variant{"LlamaMhaBiasesStatic", Architecture::kLlama, 4, true, false, true,
                StepPath::kStatic},
        Variant{"Gpt2Static", Architecture::kGpt2, 4, false, true, true, StepPath::kStatic}),
    [](const ::testing::TestParamInfo<Variant>& info) { return std::string(info.param.name); });

TEST(DecoderLora, FoldsAdaptersAndSnapshotsWeights) {
  torch::manual_seed(7);
  CausalLM model(spec_of({"", Architecture::kLlama, 2, false, true}));
  model.eval();
  LoraConfig config;
  config.set_rank(4);
  config.set_alpha(8);
  apply_lora(model, config);
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : lora_state_dict(model)) t.normal_(0, 0.2);
  auto weights = std::make_shared<DecoderWeights>(model);
  Decoder decoder(weights, 1, 16);
  const std::vector<int64_t> ids = {1, 2, 3, 4};
  const at::Tensor want = full_logits(model, ids);
  expect_tensor_near(decoder.prefill(0, torch::tensor(ids), true), want, kTol, "LoRA model");
  for (auto& p : model.parameters()) p.add_(1.0);  // the snapshot must not see this
  decoder.clear(0);
  expect_tensor_near(decoder.prefill(0, torch::tensor(ids), true), want, kTol, "snapshot");
}

TEST(DecoderLimits, RefusesOverflowBadSlotsAndBusyWeightSwaps) {
  torch::manual_seed(3);
  CausalLM model(spec_of({"", Architecture::kLlama, 2, false, true}));
  auto weights = std::make_shared<DecoderWeights>(model);
  EXPECT_THROW(Decoder(weights, 0, 8), core::InvalidArgument);
  EXPECT_THROW(Decoder(weights, 1, 65), core::InvalidArgument);
  Decoder decoder(weights, 2, 4);
  EXPECT_THROW(decoder.prefill(2, torch::tensor(std::vector<int64_t>{1}), false),
               core::InvalidArgument);
  EXPECT_THROW(decoder.prefill(0, torch::tensor(std::vector<int64_t>{1, 2, 3, 4, 5}), false),
               core::InvalidArgument);
  decoder.prefill(0, torch::tensor(std::vector<int64_t>{1, 2, 3, 4}), false);
  EXPECT_EQ(decoder.length(0), 4);  // a refused prefill left the slot as it was
  EXPECT_THROW(decoder.step(torch::tensor(std::vector<int64_t>{1})), core::InvalidArgument);
  EXPECT_THROW(decoder.set_weights(weights), core::InvalidArgument);
  decoder.clear(0);
  EXPECT_NO_THROW(decoder.set_weights(std::make_shared<DecoderWeights>(model)));
}

TEST(DecoderPaths, AutoPicksByDeviceAndModelAndRefusesPathsThatDoNotApply) {
  torch::manual_seed(5);
  CausalLM llama(spec_of({"", Architecture::kLlama, 2, false, true}));
  CausalLM gpt2(spec_of({"", Architecture::kGpt2, 4, false, true}));
  const auto llama_weights = std::make_shared<DecoderWeights>(llama);
  const auto gpt2_weights = std::make_shared<DecoderWeights>(gpt2);
  EXPECT_EQ(Decoder(llama_weights, 2, 8).step_path(), StepPath::kFused);
  EXPECT_EQ(Decoder(gpt2_weights, 2, 8).step_path(), StepPath::kEager);
  EXPECT_EQ(Decoder(gpt2_weights, 2, 8, StepPath::kStatic).step_path(), StepPath::kStatic);
  EXPECT_THROW(Decoder(gpt2_weights, 2, 8, StepPath::kFused), core::InvalidArgument);
  EXPECT_THROW(Decoder(llama_weights, 2, 8, StepPath::kGraphed), core::InvalidArgument);
}

// On a GPU: the static step and its CUDA graphs against the eager step, through the script of
// expect_the_same_steps, whose (rows, window) shapes are (3, 16), (3, 32), (4, 32), (4, 60) and
// (3, 60): one graph each, replayed as rows leave and join, and five new ones after new weights.
TEST(DecoderCuda, StaticAndGraphedStepsMatchEager) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const char* graphs_env = std::getenv("RUDDER_CUDA_GRAPHS");
  bool graphs_off = graphs_env != nullptr && std::string(graphs_env) == "0";
  // Graphs where the build has them, unless the environment turns them off.
  if (!detail::StepGraphs::compiled()) std::cout << "built without CUDA graphs\n";
  graphs_off = graphs_off || !detail::StepGraphs::compiled();
  ASSERT_EQ(detail::StepGraphs::available(), !graphs_off);
  for (const Architecture architecture : {Architecture::kLlama, Architecture::kGpt2}) {
    SCOPED_TRACE(architecture == Architecture::kLlama ? "Llama" : "GPT-2");
    torch::manual_seed(11);
    CausalLM model(
        spec_of({"", architecture, architecture == Architecture::kLlama ? 2 : 4, false, true}));
    model.eval();
    model.to(torch::kCUDA);
    torch::NoGradGuard no_grad;
    const auto weights = std::make_shared<DecoderWeights>(model);
    Decoder eager(weights, 4, 60, StepPath::kEager);
    Decoder fixed(weights, 4, 60, StepPath::kStatic);
    Decoder automatic(weights, 4, 60);
    EXPECT_EQ(automatic.step_path(), graphs_off ? StepPath::kStatic : StepPath::kGraphed);
    const size_t graphs = graphs_off ? 0 : 5;
    expect_the_same_steps({&eager, &fixed, &automatic}, 1e-4);
    EXPECT_EQ(automatic.step_graphs(), graphs) << "a capture failed (see the log) or shapes grew";
    // New weights drop the graphs that read the old ones.
    for (auto& p : model.parameters()) p.mul_(0.5);
    const auto halved = std::make_shared<DecoderWeights>(model);
    for (Decoder* d : {&eager, &fixed, &automatic}) {
      for (int64_t slot = 0; slot < 4; ++slot) d->clear(slot);
      d->set_weights(halved);
    }
    EXPECT_EQ(automatic.step_graphs(), 0u);
    expect_the_same_steps({&eager, &fixed, &automatic}, 1e-4);
    EXPECT_EQ(automatic.step_graphs(), graphs);
  }
}

// bfloat16 weights take the general paths (BLAS products, batched attention) instead of the
// float32 kernels; they must agree with the model's own bfloat16 forward.
TEST(DecoderBf16, TheGeneralPathsMatchTheModel) {
  torch::manual_seed(9);
  CausalLM model(spec_of({"", Architecture::kLlama, 2, false, true}));
  model.eval();
  model.to(torch::kBFloat16);
  torch::NoGradGuard no_grad;
  const auto weights = std::make_shared<DecoderWeights>(model);
  for (const StepPath path : {StepPath::kAuto, StepPath::kStatic}) {
    Decoder decoder(weights, 2, 16, path);
    std::vector<int64_t> seq = {4, 9, 2};
    decoder.prefill(0, torch::tensor(seq), false);
    decoder.prefill(1, torch::tensor(std::vector<int64_t>{7}), false);
    for (const int64_t next : {3, 8}) {
      seq.push_back(next);
      const at::Tensor logits = decoder.step(torch::tensor({next, next}));
      EXPECT_EQ(logits.scalar_type(), torch::kBFloat16);
      expect_tensor_near(logits.narrow(0, 0, 1).to(torch::kFloat),
                         full_logits(model, seq).narrow(0, seq.size() - 1, 1).to(torch::kFloat),
                         5e-2, core::str("bfloat16 step, path ", static_cast<int>(path)));
    }
  }
}

TEST(SmallMatmul, MatchesBlasForEveryRowCountAndOddSizes) {
  torch::manual_seed(5);
  for (const int64_t K : {1, 31, 64, 100}) {
    for (const int64_t M : {1, 2, 3, 4}) {
      const at::Tensor x = torch::randn({M, K});
      const at::Tensor w = torch::randn({37, K});
      const at::Tensor residual = torch::randn({M, 37});
      ASSERT_TRUE(detail::small_matmul_applies(x, w));
      expect_tensor_near(detail::small_matmul(x, w, {}), torch::mm(x, w.t()), 1e-4, "no residual");
      expect_tensor_near(detail::small_matmul(x, w, residual), torch::addmm(residual, x, w.t()),
                         1e-4, "with residual");
    }
  }
  EXPECT_FALSE(detail::small_matmul_applies(torch::randn({5, 8}), torch::randn({3, 8})));
  EXPECT_FALSE(detail::small_matmul_applies(torch::randn({1, 8}), torch::randn({8, 3}).t()));
}

// The packed kernel against BLAS: every row count through a tile of 12 and a chunk of 96,
// outputs that leave a panel partly empty, depths across the 128-input blocks, a residual
// accumulated, and an output with a row stride of its own.
TEST(PackedMatmul, MatchesBlasForRowCountsAndOddSizes) {
  if (!detail::PackedMatrix::supported()) GTEST_SKIP() << "this CPU has no AVX-512F";
  torch::manual_seed(6);
  for (const int64_t K : {1, 37, 128, 300}) {
    for (const int64_t N : {5, 32, 71}) {
      const at::Tensor w = torch::randn({N, K});
      const detail::PackedMatrix packed(w);
      EXPECT_EQ(packed.out_features(), N);
      EXPECT_EQ(packed.in_features(), K);
      for (const int64_t M : {1, 2, 3, 5, 11, 12, 13, 25, 96, 97, 200}) {
        const at::Tensor x = torch::randn({M, K});
        const at::Tensor residual = torch::randn({M, N});
        const double tol = 1e-5 * std::sqrt(static_cast<double>(K)) * 4;
        expect_tensor_near(packed.matmul(x, {}), torch::mm(x, w.t()), tol, "no residual");
        expect_tensor_near(packed.matmul(x, residual), torch::addmm(residual, x, w.t()), tol,
                           "with residual");
        at::Tensor wide = torch::full({M, N + 9}, 7.0);
        at::Tensor y = wide.narrow(1, 2, N);
        packed.matmul_out(x, y, true);
        expect_tensor_near(y, torch::addmm(torch::full({M, N}, 7.0), x, w.t()), tol, "strided");
        EXPECT_TRUE(torch::equal(wide.narrow(1, 0, 2), torch::full({M, 2}, 7.0)));
        EXPECT_TRUE(torch::equal(wide.narrow(1, N + 2, 7), torch::full({M, 7}, 7.0)));
      }
    }
  }
  // A row's outputs are the same bits whatever rows share the call.
  const at::Tensor w = torch::randn({70, 300});
  const detail::PackedMatrix packed(w);
  const at::Tensor x = torch::randn({30, 300});
  const at::Tensor all = packed.matmul(x, {});
  for (const int64_t M : {1, 2, 7, 13}) {
    EXPECT_TRUE(torch::equal(packed.matmul(x.narrow(0, 3, M), {}), all.narrow(0, 3, M))) << M;
  }
  at::Tensor y = torch::empty({2, 4});
  EXPECT_THROW(
      detail::PackedMatrix(torch::randn({4, 3})).matmul_out(torch::randn({2, 5}), y, false),
      core::InvalidArgument);
  EXPECT_THROW(detail::PackedMatrix(torch::randn({4, 3}, torch::kDouble)), core::InvalidArgument);
  at::Tensor both = torch::zeros({4, 8});
  at::Tensor overlapping = both.narrow(1, 2, 4);
  EXPECT_THROW(detail::PackedMatrix(torch::randn({4, 6}))
                   .matmul_out(both.narrow(1, 0, 6), overlapping, false),
               core::InvalidArgument);
  // No inputs: the products are zero.
  EXPECT_TRUE(
      torch::equal(detail::PackedMatrix(torch::randn({5, 0})).matmul(torch::randn({3, 0}), {}),
                   torch::zeros({3, 5})));
}

// The kernels' at::parallel_for starts threads: without OpenMP at compile time it would run
// every loop on one thread, whatever libtorch's thread count.
TEST(PackedMatmul, KernelsUseLibtorchsThreads) {
  if (!detail::kernels_use_openmp()) GTEST_SKIP() << "built with RUDDER_OPENMP=OFF";
  const int before = at::get_num_threads();
  at::set_num_threads(2);
  EXPECT_EQ(detail::kernel_threads(), 2);
  at::set_num_threads(1);
  EXPECT_EQ(detail::kernel_threads(), 1);
  at::set_num_threads(before);
}

// Greedy decoding with packed projections gives the tokens of the [out, in] path on a model
// large enough for several panels and depth blocks.
TEST(PackedMatmul, PackedDecoderGeneratesTheRowMajorTokens) {
  if (!detail::PackedMatrix::supported()) GTEST_SKIP() << "this CPU has no AVX-512F";
  torch::manual_seed(8);
  ModelSpec s = spec_of({"", Architecture::kLlama, 2, false, false});
  s.hidden_size = 160;
  s.head_dim = 40;
  s.intermediate_size = 272;
  CausalLM model(s);
  model.eval();
  auto packed = std::make_shared<DecoderWeights>(model, true);
  auto rows = std::make_shared<DecoderWeights>(model, false);
  ASSERT_TRUE(packed->packed());
  ASSERT_FALSE(rows->packed());
  Decoder a(packed, 4, 40), b(rows, 4, 40);
  const at::Tensor prompts = torch::randint(0, 50, {4, 6});
  for (int64_t r = 0; r < 4; ++r) {
    expect_tensor_near(a.prefill(r, prompts[r], true), b.prefill(r, prompts[r], true), 1e-4,
                       "prefill");
  }
  at::Tensor next = torch::randint(0, 50, {4});
  for (int step = 0; step < 12; ++step) {
    const at::Tensor la = a.step(next), lb = b.step(next);
    expect_tensor_near(la, lb, 1e-4, "step logits");
    ASSERT_TRUE(torch::equal(la.argmax(-1), lb.argmax(-1)));
    next = la.argmax(-1);
  }
}

}  // namespace
}  // namespace rudder::models
