// generate_jsonl: one output line per prompt line with its samples, input keys echoed, chats
// formatted; a malformed line is named and leaves no output file.
#include "rollout/generate_jsonl.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/chat.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "rollout/local_engine.h"
#include "tests/support/tensor_testing.h"
#include "tests/support/test_support.h"
#include "tests/support/tiny_models.h"

namespace rudder::rollout {
namespace {

using nlohmann::json;

class GenerateJsonlTest : public testing::SeededTest {
 protected:
  void SetUp() override {
    SeededTest::SetUp();
    model = std::make_unique<models::CausalLM>(testing::tiny_llama(32, 1, 4));
    tokenizer = data::make_byte_tokenizer();
    LocalEngineOptions o;
    o.max_batch = 3;
    o.eos_id = tokenizer->eos_id();
    o.tokenizer = tokenizer;
    engine = std::make_unique<LocalEngine>(*model, o);
    options.sampling.set_max_new_tokens(5);
    options.sampling.set_temperature(0.0);
    options.sampling.set_top_p(1.0);
    options.sampling.set_repetition_penalty(1.0);
    options.n = 2;
    options.batch_size = 2;
  }
  std::vector<json> read_lines(const std::string& path) {
    std::ifstream in(path);
    std::vector<json> out;
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
    return out;
  }
  std::unique_ptr<models::CausalLM> model;
  std::shared_ptr<const data::Tokenizer> tokenizer;
  std::unique_ptr<LocalEngine> engine;
  GenerateJsonlOptions options;
  testing::TempDir dir;
};

TEST_F(GenerateJsonlTest, WritesEveryPromptWithItsSamples) {
  const std::string in = dir.write("in.jsonl",
                                   "{\"id\": 7, \"prompt\": \"User: hi\\nAssistant: \"}\n\n"
                                   "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n"
                                   "{\"prompt\": \"x\", \"extra\": [1, 2]}\n");
  const std::string out = dir.path() + "/out.jsonl";
  int64_t calls = 0;
  options.progress = [&](int64_t done, int64_t total) {
    ++calls;
    EXPECT_EQ(total, 3);
    EXPECT_LE(done, total);
  };
  EXPECT_EQ(generate_jsonl(*engine, *tokenizer, in, out, options), 3);
  EXPECT_EQ(calls, 2);  // batches of 2
  const auto lines = read_lines(out);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].at("id"), 7);
  EXPECT_EQ(lines[2].at("extra"), json({1, 2}));
  for (const auto& line : lines) {
    ASSERT_EQ(line.at("samples").size(), 2u);
    EXPECT_EQ(line.at("policy_version"), "0");
    for (const auto& s : line.at("samples")) {
      const auto ids = s.at("token_ids").get<std::vector<int64_t>>();
      EXPECT_EQ(s.at("logprobs").size(), ids.size());
      EXPECT_EQ(s.at("policy_logprobs").size(), ids.size());
      const std::string reason = s.at("finish_reason");
      std::vector<int64_t> text_ids = ids;
      if (reason == "eos") text_ids.pop_back();
      EXPECT_EQ(s.at("text").get<std::string>(), tokenizer->decode(text_ids));
    }
  }
  // The chat line was formatted with the template's generation prompt: greedy decoding of the
  // same text as a plain prompt gives the same tokens.
  const std::string formatted = data::format_chat({{"user", "hi"}}, options.chat_template, true);
  GenerateInput direct;
  direct.prompt = tokenizer->encode(formatted);
  direct.sampling = options.sampling;
  const auto want = engine->generate({direct})[0].samples[0].tokens;
  EXPECT_EQ(lines[1].at("samples")[0].at("token_ids").get<std::vector<int64_t>>(), want);
}

// A prompt given as messages, with its content as text parts, reads as the training data does
// (formatted with the generation prompt, the parts joined): as the same chat as "messages".
TEST_F(GenerateJsonlTest, PromptMessagesReadAsInTheTrainingData) {
  const std::string in =
      dir.write("in.jsonl",
                "{\"prompt\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": "
                "\"h\"}, {\"type\": \"text\", \"text\": \"i\"}]}]}\n"
                "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n");
  const std::string out = dir.path() + "/out.jsonl";
  ASSERT_EQ(generate_jsonl(*engine, *tokenizer, in, out, options), 2);
  const auto lines = read_lines(out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].at("samples")[0].at("token_ids"), lines[1].at("samples")[0].at("token_ids"));
  const std::string image =
      dir.write("image.jsonl",
                "{\"prompt\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}\n");
  try {
    generate_jsonl(*engine, *tokenizer, image, out + "2", options);
    FAIL() << "expected InvalidArgument";
  } catch (const core::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("image.jsonl:1: a content part of 'prompt' has type"),
              std::string::npos)
        << e.what();
  }
}

// Prompt files in the other layouts training reads: a JSON array, Alpaca's instruction and
// input, ShareGPT's conversations; each record echoed as it was.
TEST_F(GenerateJsonlTest, ArraysAlpacaAndShareGptPromptsReadAsTrainingReadsThem) {
  const std::string in = dir.write("in.json",
                                   R"([{"instruction": "hi", "id": 1},
          {"conversations": [{"from": "human", "value": "hi"}]},
          {"messages": [{"role": "user", "content": "hi"}]}])");
  const std::string out = dir.path() + "/out.jsonl";
  ASSERT_EQ(generate_jsonl(*engine, *tokenizer, in, out, options), 3);
  const auto lines = read_lines(out);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].at("instruction"), "hi");
  EXPECT_EQ(lines[0].at("id"), 1);
  EXPECT_TRUE(lines[1].contains("conversations"));
  // The same chat each way: greedy decoding gives the same tokens.
  EXPECT_EQ(lines[0].at("samples")[0].at("token_ids"), lines[2].at("samples")[0].at("token_ids"));
  EXPECT_EQ(lines[1].at("samples")[0].at("token_ids"), lines[2].at("samples")[0].at("token_ids"));
  // A record with no prompt in any layout is named with the layouts it could have.
  const std::string none = testing::error_message<core::InvalidArgument>([&] {
    generate_jsonl(*engine, *tokenizer, dir.write("none.jsonl", "{\"id\": 1}\n"), out + "2",
                   options);
  });
  EXPECT_NE(none.find("none.jsonl:1: missing 'prompt' (or 'messages'"), std::string::npos) << none;
  // Generate's own output is refused as input: its "samples" would be overwritten.
  const std::string own = testing::error_message<core::InvalidArgument>(
      [&] { generate_jsonl(*engine, *tokenizer, out, out + "2", options); });
  EXPECT_NE(own.find("out.jsonl:1: \"samples\" is the output's key"), std::string::npos) << own;
}

TEST_F(GenerateJsonlTest, AMalformedLineIsNamedAndNothingIsWritten) {
  const std::string out = dir.path() + "/out.jsonl";
  const std::string bad = dir.write("bad.jsonl", "{\"prompt\": \"a\"}\n{\"prompt\": 3}\n");
  try {
    generate_jsonl(*engine, *tokenizer, bad, out, options);
    FAIL() << "expected InvalidArgument";
  } catch (const core::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
  const std::string not_json = dir.write("nj.jsonl", "{\"prompt\": \"a\"\n");
  EXPECT_THROW(generate_jsonl(*engine, *tokenizer, not_json, out, options), core::InvalidArgument);
  EXPECT_THROW(generate_jsonl(*engine, *tokenizer, dir.path() + "/missing.jsonl", out, options),
               core::NotFound);
  EXPECT_FALSE(engine->busy());
}

}  // namespace
}  // namespace rudder::rollout
