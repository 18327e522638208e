#include "trainer/recipe.h"

#include <algorithm>

#include <gtest/gtest.h>

#include "core/config.h"
#include "core/error.h"
#include "data/tokenizer.h"
#include "tests/support/test_support.h"
#include "trainer/detail/recipe_support.h"
#include "trainer/experiment.h"

namespace rudder::trainer {
namespace {

// The message build_experiment refuses `yaml` with ("" when it builds).
std::string refusal(const std::string& yaml) {
  ExperimentConfig config;
  core::parse_config_text(yaml, "recipe test", {}, &config);
  try {
    build_experiment(config);
  } catch (const core::InvalidArgument& e) {
    return e.what();
  }
  return "";
}

TEST(Recipes, TheBuiltinsAreTheOneTable) {
  const auto names = recipes().names();
  EXPECT_EQ(names, (std::vector<std::string>{"dpo", "gedi", "reward_model", "sft"}));
  EXPECT_NE(refusal("ppo: {}\n")
                .find("method 'ppo' is not implemented yet (implemented: dpo, gedi, "
                      "reward_model, sft)"),
            std::string::npos);
  EXPECT_NE(refusal("").find("the config names no method: add one of dpo, gedi, reward_model, sft"),
            std::string::npos);
  RecipeRegistry registry;
  register_builtins(registry);
  EXPECT_THROW(registry.add("sft", recipes().get("sft")), core::InvalidArgument);
}

TEST(Recipes, SettingsReadOnlyInSomeCasesAreRefusedInTheOthers) {
  testing::TempDir dir;
  const std::string file = dir.write("train.jsonl", "{\"prompt\": \"a\", \"completion\": \"b\"}\n");
  EXPECT_NE(refusal("sft: {}\ndata: {train_path: " + file + ", synthetic: {num_train: 5}}\n")
                .find("data.synthetic is set, but it is not used: data.train_path names a file"),
            std::string::npos);
  EXPECT_NE(refusal("dpo: {reference_free: true}\nmodel: {reference_path: /tmp/ref}\n")
                .find("model.reference_path is set, but it is not used: dpo.reference_free"),
            std::string::npos);
  EXPECT_NE(refusal("dpo: {}\ndata: {synthetic: {samples_per_prompt: 8}}\n")
                .find("data.synthetic.samples_per_prompt is set, but it is not used"),
            std::string::npos);
}

// sft.all_assistant_turns reaches the tokenized rows: the earlier assistant turns of a
// "messages" line are marked learned (the byte tokenizer: one token per byte), and only then.
TEST(Recipes, SftDataMarksEarlierAssistantTurnsWhenAsked) {
  testing::TempDir dir;
  const std::string file = dir.write(
      "chat.jsonl",
      R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "bb"}, {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]})"
      "\n");
  const auto learned_tokens = [&](bool all_turns) {
    ExperimentConfig config;
    core::parse_config_text(std::string("sft: {all_assistant_turns: ") +
                                (all_turns ? "true" : "false") + "}\ndata: {train_path: " + file +
                                "}\n",
                            "recipe test", {}, &config);
    const auto tokenizer = data::make_tokenizer(config.tokenizer(), "");
    const algorithms::SftData data = detail::load_sft_data(config, *tokenizer);
    EXPECT_EQ(data.train.size(), 1u);
    const auto& flags = data.train.at(0).prompt_learned;
    return std::count(flags.begin(), flags.end(), uint8_t{1});
  };
  EXPECT_EQ(learned_tokens(false), 0);
  EXPECT_EQ(learned_tokens(true), 3);  // "bb" and the assistant suffix "\n"
}

// data.fields reaches the loaders, and is refused where no file is read.
TEST(Recipes, DataFieldsAreReadFromFilesAlone) {
  testing::TempDir dir;
  const std::string file = dir.write("qa.jsonl", R"({"q": "2+2=", "a": "4"})"
                                                 "\n");
  ExperimentConfig config;
  core::parse_config_text(
      "sft: {}\ndata: {train_path: " + file + ", fields: {prompt: q, completion: a}}\n",
      "recipe test", {}, &config);
  const auto tokenizer = data::make_tokenizer(config.tokenizer(), "");
  const algorithms::SftData data = detail::load_sft_data(config, *tokenizer);
  ASSERT_EQ(data.train.size(), 1u);
  EXPECT_EQ(tokenizer->decode(data.train[0].prompt), "2+2=");
  EXPECT_NE(refusal("sft: {}\ndata: {fields: {prompt: q}}\n")
                .find("data.fields is set, but it is not used: data.train_path names no file"),
            std::string::npos);
  EXPECT_NE(refusal("gedi: {}\ndata: {fields: {text: review}}\n").find("data.fields is set"),
            std::string::npos);
}

TEST(Recipes, RewardModelKindsRefuseWhatTheyDoNotRead) {
  EXPECT_NE(refusal("reward_model: {kind: genarm, center_coef: 0.1}\n")
                .find("reward_model.center_coef is set, but it is not used: reward_model.kind "
                      "genarm does not read it"),
            std::string::npos);
  EXPECT_NE(refusal("reward_model: {kind: genarm, loss: ranked}\n")
                .find("reward_model.loss is set, but it is not used"),
            std::string::npos);
  EXPECT_NE(
      refusal("reward_model: {kind: scalar, genarm: {beta_r: 0.1}}\n")
          .find("reward_model.genarm is set, but it is not used: reward_model.kind is scalar"),
      std::string::npos);
  EXPECT_NE(refusal("reward_model: {kind: dmoerm}\nmodel: {lora: {rank: 4}}\n")
                .find("model.lora is set, but it is not used: DMoERM adds its own expert adapters"),
            std::string::npos);
  EXPECT_NE(refusal("reward_model: {kind: dmoerm, use_margin: true}\n")
                .find("reward_model.use_margin is set, but it is not used"),
            std::string::npos);
  EXPECT_NE(refusal("reward_model: {loss: ranked, center_coef: 0.5}\n")
                .find("center_coef 0.5 is for loss bt"),
            std::string::npos);
  EXPECT_NE(refusal("sft: {}\nreward: {sources: [{kind: regex, pattern: x}]}\n")
                .find("reward.sources is set, but method 'sft' does not use it"),
            std::string::npos);
}

}  // namespace
}  // namespace rudder::trainer
