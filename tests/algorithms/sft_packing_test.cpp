// SFT with sft.packing gives the loss and gradients of unpacked SFT on the same examples, and
// sft.all_assistant_turns learns the earlier assistant turns of a conversation.
#include "algorithms/sft.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/config.h"
#include "data/chat.h"
#include "data/dataset.h"
#include "data/synthetic.h"
#include "models/factory.h"
#include "tests/support/tensor_testing.h"

namespace rudder::algorithms {
namespace {

struct StepResult {
  StepStats stats;
  std::map<std::string, at::Tensor> grads;
  double units = 0;  // what the method counted before the step
};

// Example k as load_sft_jsonl splits a "messages" line of three assistant turns: the last is
// the completion, the earlier two are ranges of the prompt.
data::SftExample conversation(const ChatTemplate& t, int k) {
  const std::vector<data::ChatMessage> context = {{"user", "question " + std::to_string(k)},
                                                  {"assistant", std::string(1 + k % 3, 'a')},
                                                  {"user", "and?"},
                                                  {"assistant", "then b"}};
  data::SftExample ex;
  ex.prompt = data::format_chat(context, t, true, &ex.assistant_turns);
  ex.completion = "final " + std::to_string(k) + t.assistant_suffix();
  return ex;
}

// One SFT step over 12 examples: the synthetic tasks, or conversations whose earlier assistant
// turns are learned too (sft.all_assistant_turns).
ExperimentConfig tiny_config(bool packing) {
  ExperimentConfig config;
  core::parse_config_text(
      std::string("model: {hidden_size: 32, num_layers: 2, num_heads: 2, num_kv_heads: 1, "
                  "intermediate_size: 64, max_position_embeddings: 128}\n"
                  "data: {max_length: 96}\nsft: {packing: ") +
          (packing ? "true" : "false") + "}\n",
      "packing test", {}, &config);
  return config;
}

StepResult sft_step(bool packing, bool all_turns = false) {
  const ExperimentConfig config = tiny_config(packing);
  std::shared_ptr<data::Tokenizer> tokenizer = data::make_tokenizer(config.tokenizer(), "");
  torch::manual_seed(5);
  auto model = models::make_model(config.model(), tokenizer->vocab_size());
  SftData data;
  std::vector<data::SftExample> examples;
  if (all_turns) {
    for (int k = 0; k < 12; ++k)
      examples.push_back(conversation(config.tokenizer().chat_template(), k));
  } else {
    for (const auto& ex : data::SyntheticTasks({"mixed"}, 3).examples(12, 0))
      examples.push_back(data::SyntheticTasks::sft(ex));
  }
  for (const auto& ex : examples) {
    data.train.push_back(data::tokenize_pair(*tokenizer, ex.prompt, ex.completion,
                                             config.tokenizer(), config.data(),
                                             ex.assistant_turns));
  }
  Sft method(model, tokenizer, data, config);
  Batch batch;
  for (uint64_t i = 0; i < 12; ++i) batch.examples.push_back(i);
  std::vector<size_t> items(12);
  for (size_t i = 0; i < items.size(); ++i) items[i] = i;
  StepResult run;
  run.units = method.units(batch, items);
  run.stats = method.train_micro_batch(batch, items, run.units);
  for (const auto& item : model->named_parameters(true))
    run.grads[item.key()] = item.value().grad();
  return run;
}

TEST(SftPacking, MatchesUnpackedLossAndGradients) {
  const StepResult unpacked = sft_step(false), packed = sft_step(true);
  EXPECT_EQ(packed.stats.units, unpacked.stats.units);
  EXPECT_EQ(packed.stats.tokens, unpacked.stats.tokens);  // real tokens, padding excluded
  EXPECT_NEAR(packed.stats.loss_sum / packed.stats.units,
              unpacked.stats.loss_sum / unpacked.stats.units, 1e-5);
  for (const auto& [name, g] : unpacked.grads)
    testing::expect_tensor_near(packed.grads.at(name), g, 1e-5, name);
}

// With sft.all_assistant_turns, the earlier assistant turns of a conversation are labels too:
// the units counted before the step are the labels the step finds, packed or not, and they are
// the completions' tokens plus those turns' (the byte tokenizer: one token per byte).
TEST(SftTurns, EarlierAssistantTurnsAreLearnedPackedOrNot) {
  const StepResult unpacked = sft_step(false, true), packed = sft_step(true, true);
  const ExperimentConfig config = tiny_config(false);
  const ChatTemplate& t = config.tokenizer().chat_template();
  double expected = 0;
  for (int k = 0; k < 12; ++k) {
    const data::SftExample ex = conversation(t, k);
    ASSERT_EQ(ex.assistant_turns.size(), 2u);
    expected += static_cast<double>(ex.completion.size()) + 1;  // and its EOS
    for (const auto& [begin, end] : ex.assistant_turns)
      expected += static_cast<double>(end - begin);
  }
  EXPECT_EQ(unpacked.units, expected);
  EXPECT_EQ(unpacked.stats.units, expected);
  EXPECT_EQ(packed.stats.units, expected);
  EXPECT_NEAR(packed.stats.loss_sum / packed.stats.units,
              unpacked.stats.loss_sum / unpacked.stats.units, 1e-5);
  for (const auto& [name, g] : unpacked.grads)
    testing::expect_tensor_near(packed.grads.at(name), g, 1e-5, name);
}

}  // namespace
}  // namespace rudder::algorithms
