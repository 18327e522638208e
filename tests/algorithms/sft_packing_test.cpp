// SFT with sft.packing gives the loss and gradients of unpacked SFT on the same examples.
#include "algorithms/sft.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/config.h"
#include "data/synthetic.h"
#include "models/factory.h"
#include "tests/support/tensor_testing.h"

namespace rudder::algorithms {
namespace {

struct StepResult {
  StepStats stats;
  std::map<std::string, at::Tensor> grads;
  int64_t rows = 0;
};

StepResult sft_step(bool packing) {
  ExperimentConfig config;
  core::parse_config_text(
      std::string("model: {hidden_size: 32, num_layers: 2, num_heads: 2, num_kv_heads: 1, "
                  "intermediate_size: 64, max_position_embeddings: 128}\n"
                  "data: {max_length: 96}\nsft: {packing: ") +
          (packing ? "true" : "false") + "}\n",
      "packing test", {}, &config);
  std::shared_ptr<data::Tokenizer> tokenizer = data::make_tokenizer(config.tokenizer(), "");
  torch::manual_seed(5);
  auto model = models::make_model(config.model(), tokenizer->vocab_size());
  SftData data;
  for (const auto& ex : data::SyntheticTasks({"mixed"}, 3).examples(12, 0)) {
    const auto sft = data::SyntheticTasks::sft(ex);
    data.train.push_back(data::tokenize_pair(*tokenizer, sft.prompt, sft.completion,
                                             config.tokenizer(), config.data()));
  }
  Sft method(model, tokenizer, data, config);
  Batch batch;
  for (uint64_t i = 0; i < 12; ++i) batch.examples.push_back(i);
  std::vector<size_t> items(12);
  for (size_t i = 0; i < items.size(); ++i) items[i] = i;
  const double units = method.units(batch, items);
  StepResult run;
  run.stats = method.train_micro_batch(batch, items, units);
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

}  // namespace
}  // namespace rudder::algorithms
