#include "data/dataset.h"

#include <stdexcept>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tests/support/test_support.h"

namespace rudder::data {
namespace {

TEST(Dataset, SftReadsPromptCompletionAndMessages) {
  testing::TempDir dir;
  const std::string path = dir.write(
      "sft.jsonl",
      R"({"prompt": "2+2=", "completion": "4", "category": "arithmetic"})"
      "\n\n"
      R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]})"
      "\n");
  const auto examples = load_sft_jsonl(path, testing::chat_template(), false);
  ASSERT_EQ(examples.size(), 2u);
  EXPECT_EQ(examples[0].prompt, "2+2=");
  EXPECT_EQ(examples[0].category, "arithmetic");
  EXPECT_EQ(examples[1].prompt, "User: Hi\nAssistant: ");
  EXPECT_EQ(examples[1].completion, "Hello!\n");
  EXPECT_TRUE(examples[1].assistant_turns.empty());
  // A longer conversation: the earlier assistant turns' ranges in the prompt.
  const auto turns = load_sft_jsonl(
      dir.write(
          "turns.jsonl",
          R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]})"
          "\n"),
      testing::chat_template(), false);
  ASSERT_EQ(turns.size(), 1u);
  EXPECT_EQ(turns[0].prompt, "User: a\nAssistant: b\nUser: c\nAssistant: ");
  ASSERT_EQ(turns[0].assistant_turns.size(), 1u);
  const auto [begin, end] = turns[0].assistant_turns[0];
  EXPECT_EQ(turns[0].prompt.substr(begin, end - begin), "b\n");
  EXPECT_EQ(turns[0].completion, "d\n");
}

TEST(Dataset, PreferenceReadsStringsConversationsAndHhDialogues) {
  testing::TempDir dir;
  const std::string path = dir.write(
      "pref.jsonl",
      R"({"prompt": "p", "chosen": "good", "rejected": "bad", "margin": 0.5})"
      "\n"
      R"({"prompt": "Hi", "chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}], "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away"}]})"
      "\n"
      R"({"chosen": "\n\nHuman: Hi\n\nAssistant: Hello there", "rejected": "\n\nHuman: Hi\n\nAssistant: Hey"})"
      "\n");
  const auto pairs = load_preference_jsonl(path, testing::chat_template(), false);
  ASSERT_EQ(pairs.size(), 3u);
  EXPECT_EQ(pairs[0].margin, 0.5);
  EXPECT_EQ(pairs[1].prompt, "User: Hi\nAssistant: ");
  EXPECT_EQ(pairs[1].chosen, "Hello\n");
  EXPECT_EQ(pairs[1].rejected, "Go away\n");
  EXPECT_EQ(pairs[2].prompt, "\n\nHuman: Hi\n\nAssistant:");
  EXPECT_EQ(pairs[2].chosen, " Hello there");
  EXPECT_EQ(pairs[2].rejected, " Hey");
}

// ShareGPT's files: "conversations" of {"from", "value"} messages, read as "messages" are (not
// beside "messages" or a prompt); LLaMA-Factory's preference layout (the conversation, then one
// message or string each); {"from", "value"} messages in TRL's conversational layout too.
TEST(Dataset, ShareGptConversations) {
  testing::TempDir dir;
  const std::string sft = dir.write(
      "sharegpt.json",
      R"([{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
          {"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q"}, {"from": "gpt", "value": "a"}, {"from": "human", "value": "R"}, {"from": "gpt", "value": "b"}]}])");
  const auto examples = load_sft_jsonl(sft, testing::chat_template(), false);
  ASSERT_EQ(examples.size(), 2u);
  EXPECT_EQ(examples[0].prompt, "User: Hi\nAssistant: ");
  EXPECT_EQ(examples[0].completion, "Hello\n");
  EXPECT_EQ(examples[1].completion, "b\n");
  EXPECT_NE(examples[1].prompt.find("User: Q\nAssistant: a\nUser: R\nAssistant: "),
            std::string::npos);
  // The prompts of a conversation: its messages with the generation prompt.
  const auto prompts = load_prompts_jsonl(
      dir.write("prompts.jsonl", R"({"conversations": [{"from": "human", "value": "Hi"}]})"
                                 "\n"),
      testing::chat_template(), false);
  ASSERT_EQ(prompts.size(), 1u);
  EXPECT_EQ(prompts[0].prompt, "User: Hi\nAssistant: ");
  const auto pairs = load_preference_jsonl(
      dir.write(
          "pref.jsonl",
          R"({"conversations": [{"from": "human", "value": "Hi"}], "chosen": {"from": "gpt", "value": "Hello"}, "rejected": {"from": "gpt", "value": "Go"}})"
          "\n"
          R"({"conversations": [{"from": "human", "value": "Q"}], "chosen": "yes", "rejected": "no"})"
          "\n"
          R"({"prompt": [{"from": "human", "value": "Hi"}], "chosen": [{"from": "gpt", "value": "Hey"}], "rejected": [{"from": "gpt", "value": "Go"}]})"
          "\n"),
      testing::chat_template(), false);
  ASSERT_EQ(pairs.size(), 3u);
  EXPECT_EQ(pairs[0].prompt, "User: Hi\nAssistant: ");
  EXPECT_EQ(pairs[0].chosen, "Hello\n");
  EXPECT_EQ(pairs[0].rejected, "Go\n");
  EXPECT_EQ(pairs[1].prompt, "User: Q\nAssistant: ");
  EXPECT_EQ(pairs[1].chosen, "yes");
  EXPECT_EQ(pairs[2].prompt, "User: Hi\nAssistant: ");
  EXPECT_EQ(pairs[2].chosen, "Hey\n");
  // "messages", or a prompt and completion, win over "conversations".
  const auto both = load_sft_jsonl(
      dir.write(
          "both.jsonl",
          R"({"messages": [{"role": "user", "content": "M"}, {"role": "assistant", "content": "m"}], "conversations": [{"from": "human", "value": "C"}, {"from": "gpt", "value": "c"}]})"
          "\n"
          R"({"prompt": "P", "completion": "p", "conversations": [{"from": "human", "value": "C"}, {"from": "gpt", "value": "c"}]})"
          "\n"),
      testing::chat_template(), false);
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[0].completion, "m\n");
  EXPECT_EQ(both[1].prompt, "P");
  EXPECT_EQ(both[1].completion, "p");
  const auto error = [&](const std::string& line, bool preference) {
    try {
      const std::string path = dir.write("bad.jsonl", line + "\n");
      if (preference)
        load_preference_jsonl(path, testing::chat_template(), false);
      else
        load_sft_jsonl(path, testing::chat_template(), false);
    } catch (const core::InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(
      error(
          R"({"conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}]})",
          false)
          .find("bad.jsonl:1: the last message of 'conversations' must be the assistant's"),
      std::string::npos);
  EXPECT_NE(
      error(
          R"({"conversations": [{"from": "human", "value": "x"}], "chosen": {"from": "human", "value": "y"}, "rejected": "n"})",
          true)
          .find("the first message of 'chosen' must be the assistant's"),
      std::string::npos);
  EXPECT_NE(
      error(R"({"conversations": [{"from": "human", "value": "x"}], "chosen": 3, "rejected": "n"})",
            true)
          .find("'chosen' must be a string or one assistant message"),
      std::string::npos);
}

// Alpaca's layout: the instruction and its input (where not empty) as one user turn, after the
// system prompt where given; the output as the assistant's turn. Prompt files read it too.
TEST(Dataset, AlpacaInstructionInputOutput) {
  testing::TempDir dir;
  const auto examples =
      load_sft_jsonl(dir.write("alpaca.json",
                               R"([{"instruction": "Add", "input": "2 and 3", "output": "5"},
                    {"instruction": "Greet", "input": "", "output": "Hi"},
                    {"instruction": "Greet", "output": "Hi", "system": "Be brief"}])"),
                     testing::chat_template(), false);
  ASSERT_EQ(examples.size(), 3u);
  EXPECT_EQ(examples[0].prompt, "User: Add\n2 and 3\nAssistant: ");
  EXPECT_EQ(examples[0].completion, "5\n");
  EXPECT_EQ(examples[1].prompt, "User: Greet\nAssistant: ");
  EXPECT_EQ(examples[2].prompt, format_chat({{"system", "Be brief"}, {"user", "Greet"}},
                                            testing::chat_template(), true));
  EXPECT_NE(examples[2].prompt.find("Be brief"), std::string::npos);
  const auto prompts =
      load_prompts_jsonl(dir.write("prompts.jsonl", R"({"instruction": "Add", "input": "1 and 1"})"
                                                    "\n"),
                         testing::chat_template(), false);
  ASSERT_EQ(prompts.size(), 1u);
  EXPECT_EQ(prompts[0].prompt, "User: Add\n1 and 1\nAssistant: ");
  try {
    load_sft_jsonl(dir.write("bad.jsonl", R"({"instruction": "Add", "input": 3, "output": "5"})"
                                          "\n"),
                   testing::chat_template(), false);
    FAIL() << "a number was read as an input";
  } catch (const core::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:1: 'input' must be a string"),
              std::string::npos)
        << e.what();
  }
}

// Alpaca's "history": the turns before the instruction, their responses' ranges kept for
// sft.all_assistant_turns; and Alpaca's preference layout, each response a string.
TEST(Dataset, AlpacaHistoryAndPreferencePairs) {
  testing::TempDir dir;
  const auto examples = load_sft_jsonl(
      dir.write(
          "history.json",
          R"([{"instruction": "And 3?", "output": "4", "history": [["1+1?", "2"], ["2+1?", "3"]]},
                    {"instruction": "Hi", "output": "Hello", "history": []},
                    {"instruction": "Hi", "output": "Hello", "history": null}])"),
      testing::chat_template(), false);
  ASSERT_EQ(examples.size(), 3u);
  EXPECT_EQ(examples[0].prompt,
            "User: 1+1?\nAssistant: 2\nUser: 2+1?\nAssistant: 3\nUser: And 3?\nAssistant: ");
  EXPECT_EQ(examples[0].completion, "4\n");
  ASSERT_EQ(examples[0].assistant_turns.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const auto [begin, end] = examples[0].assistant_turns[i];
    EXPECT_EQ(examples[0].prompt.substr(begin, end - begin), i == 0 ? "2\n" : "3\n");
  }
  EXPECT_EQ(examples[1].prompt, "User: Hi\nAssistant: ");
  EXPECT_EQ(examples[2].prompt, examples[1].prompt);
  const auto pairs = load_preference_jsonl(
      dir.write(
          "pairs.jsonl",
          R"({"instruction": "Capital of France?", "input": "", "chosen": "Paris", "rejected": "Lyon"})"
          "\n"),
      testing::chat_template(), false);
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].prompt, "User: Capital of France?\nAssistant: ");  // not a shared prefix
  EXPECT_EQ(pairs[0].chosen, "Paris\n");
  EXPECT_EQ(pairs[0].rejected, "Lyon\n");
  for (const std::string bad :
       {R"("history": [["q"]])", R"("history": "q")", R"("history": [["q", 2]])"}) {
    const std::string what = testing::error_message<core::InvalidArgument>([&] {
      load_sft_jsonl(
          dir.write("bad.jsonl", R"({"instruction": "x", "output": "y", )" + bad + "}\n"),
          testing::chat_template(), false);
    });
    EXPECT_NE(what.find("bad.jsonl:1: 'history'"), std::string::npos) << bad << ": " << what;
  }
}

// Records to score: a pair where "chosen"/"rejected" are, else one response; each handed over
// as the file has it too. A data.fields name no record has is the training file's, not an error.
TEST(Dataset, ScoringRecordsKeepTheRecordAsInTheFile) {
  testing::TempDir dir;
  const std::string path = dir.write("score.jsonl", R"({"q": "2+2=", "response": "4"}
{"q": "p", "chosen": "a", "rejected": "b"}
{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}
)");
  std::vector<std::pair<nlohmann::json, ScoringRecord>> got;
  for_each_scoring_record(path, testing::chat_template(), false, nullptr,
                          {{"prompt", "q"}, {"text", "body"}},
                          [&](const nlohmann::json& as_in_file, ScoringRecord r) {
                            got.emplace_back(as_in_file, std::move(r));
                          });
  ASSERT_EQ(got.size(), 3u);
  EXPECT_TRUE(got[0].first.contains("q"));
  EXPECT_FALSE(got[0].first.contains("prompt"));
  EXPECT_FALSE(got[0].second.preference);
  EXPECT_EQ(got[0].second.prompt, "2+2=");
  EXPECT_EQ(got[0].second.response, "4");
  EXPECT_TRUE(got[1].second.preference);
  EXPECT_EQ(got[1].second.response, "a");
  EXPECT_EQ(got[1].second.rejected, "b");
  EXPECT_EQ(got[2].second.prompt, "User: Hi\nAssistant: ");
  EXPECT_EQ(got[2].second.response, "Yo\n");
  // A failure of the callback's own that is not an InvalidArgument passes through untouched.
  EXPECT_THROW(for_each_scoring_record(path, testing::chat_template(), true, nullptr, {},
                                       [](const nlohmann::json&, ScoringRecord) {
                                         throw std::runtime_error("caller");
                                       }),
               std::runtime_error);
}

// Prompts with their samples: "responses", or what `rudder generate` writes.
TEST(Dataset, PromptSamplesFromResponsesOrGeneratedSamples) {
  testing::TempDir dir;
  const auto samples =
      load_prompt_samples_jsonl(dir.write("s.jsonl",
                                          R"({"prompt": "p", "responses": ["a", "b"]}
{"messages": [{"role": "user", "content": "Hi"}], "samples": [{"text": "c", "token_ids": [1]}]}
)"),
                                testing::chat_template(), false);
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(samples[0].responses, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(samples[1].prompt, "User: Hi\nAssistant: ");
  EXPECT_EQ(samples[1].responses, (std::vector<std::string>{"c"}));
  const std::string what = testing::error_message<core::InvalidArgument>([&] {
    load_prompt_samples_jsonl(dir.write("bad.jsonl", R"({"prompt": "p"})"
                                                     "\n"),
                              testing::chat_template(), false);
  });
  EXPECT_NE(what.find("bad.jsonl:1: missing 'responses'"), std::string::npos) << what;
  EXPECT_EQ(what.find("data.fields"), std::string::npos) << what;  // it reads no data.fields
}

// Records as the loaders count them: non-empty lines, a byte order mark on a line of its own
// included; -1 for an array file.
TEST(Dataset, CountsRecordsOfJsonlNotOfArrays) {
  testing::TempDir dir;
  EXPECT_EQ(count_records(dir.write("a.jsonl", "{}\n\n {} \n{}")), 3);
  EXPECT_EQ(count_records(dir.write("b.json", "\n  [{}, {}]")), -1);
  EXPECT_EQ(count_records(dir.write("c.json", "\xEF\xBB\xBF\n[{}]")), -1);
  EXPECT_EQ(count_records(dir.write("d.jsonl", "\xEF\xBB\xBF{}\n{}\n")), 2);
  EXPECT_EQ(count_records(dir.write("e.jsonl", "")), 0);
  EXPECT_THROW(count_records(dir.path() + "/missing.jsonl"), core::NotFound);
}

// Two strings without a prompt are HH-RLHF dialogues only with the "Assistant:" turn they share;
// else the record misses its prompt (a shared prefix of two answers is no prompt).
TEST(Dataset, PreferenceStringsWithoutADialogueNeedTheirPrompt) {
  testing::TempDir dir;
  const std::string what = testing::error_message<core::InvalidArgument>([&] {
    load_preference_jsonl(
        dir.write("orca.jsonl",
                  R"({"question": "Sky?", "chosen": "The sky is blue", "rejected": "The sea"})"
                  "\n"),
        testing::chat_template(), false);
  });
  EXPECT_NE(what.find("orca.jsonl:1: missing 'prompt'"), std::string::npos) << what;
  // An Alpaca record whose responses are whole conversations reads as those conversations.
  const auto pairs = load_preference_jsonl(
      dir.write(
          "conv.jsonl",
          R"({"instruction": "x", "chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "A"}], "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "B"}]})"
          "\n"),
      testing::chat_template(), false);
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].prompt, "User: Hi\nAssistant: ");
  EXPECT_EQ(pairs[0].chosen, "A\n");
}

// TRL's conversational layouts (the prompt apart, the responses as the messages after it),
// plain language-modelling text, and contents given as lists of text parts.
TEST(Dataset, ConversationalLayoutsTextAndContentParts) {
  testing::TempDir dir;
  const std::string sft = dir.write(
      "sft.jsonl",
      R"({"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Hello"}]})"
      "\n"
      R"({"text": "plain text"})"
      "\n"
      R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}, {"role": "assistant", "content": "Yo"}]})"
      "\n"
      R"({"prompt": [{"role": "user", "content": "Q"}], "completion": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]})"
      "\n");
  const auto examples = load_sft_jsonl(sft, testing::chat_template(), false);
  ASSERT_EQ(examples.size(), 4u);
  EXPECT_EQ(examples[0].prompt, "User: Hi\nAssistant: ");
  EXPECT_EQ(examples[0].completion, "Hello\n");
  EXPECT_EQ(examples[1].prompt, "");
  EXPECT_EQ(examples[1].completion, "plain text");
  EXPECT_EQ(examples[2].prompt, "User: Hi there\nAssistant: ");
  EXPECT_EQ(examples[2].completion, "Yo\n");
  EXPECT_TRUE(examples[2].assistant_turns.empty());
  EXPECT_EQ(examples[3].prompt, "User: Q\nAssistant: ");
  EXPECT_EQ(examples[3].completion, "a\nUser: b\nAssistant: c\n");

  const std::string pref = dir.write(
      "pref.jsonl",
      R"({"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello"}], "rejected": [{"role": "assistant", "content": "Go"}]})"
      "\n");
  const auto pairs = load_preference_jsonl(pref, testing::chat_template(), false);
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].prompt, "User: Hi\nAssistant: ");
  EXPECT_EQ(pairs[0].chosen, "Hello\n");
  EXPECT_EQ(pairs[0].rejected, "Go\n");

  const auto sft_error = [&](const std::string& line) {
    try {
      load_sft_jsonl(dir.write("bad.jsonl", line + "\n"), testing::chat_template(), false);
    } catch (const core::InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(
      sft_error(
          R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}, {"role": "assistant", "content": "x"}]})")
          .find("has type 'image_url': only text parts are read"),
      std::string::npos);
  EXPECT_NE(
      sft_error(
          R"({"prompt": [{"role": "user", "content": "p"}], "completion": [{"role": "user", "content": "x"}]})")
          .find("the first message of 'completion' must be the assistant's"),
      std::string::npos);
  // Messages and strings are not mixed: a response formatted as a turn beside a plain one.
  EXPECT_NE(sft_error(R"({"prompt": "p", "completion": [{"role": "assistant", "content": "x"}]})")
                .find("'completion' is a list of messages, so 'prompt' must be one too"),
            std::string::npos);
  EXPECT_NE(sft_error(R"({"prompt": "p", "text": "x"})").find("missing 'completion'"),
            std::string::npos);
  EXPECT_NE(sft_error(R"({"prompt": 3, "completion": "x"})")
                .find("'prompt' must be a string or a list of messages"),
            std::string::npos);
  // Responses formatted as turns need the prompt as messages, and both of them as messages.
  const auto preference_error = [&](const std::string& line) {
    try {
      load_preference_jsonl(dir.write("mixed.jsonl", line + "\n"), testing::chat_template(), false);
    } catch (const core::InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string turn = R"([{"role": "assistant", "content": "A"}])";
  for (const std::string prompt : {R"(, "prompt": "Q: ")", ""}) {
    EXPECT_NE(preference_error(R"({"chosen": )" + turn + R"(, "rejected": )" + turn + prompt + "}")
                  .find("so the line needs its 'prompt' as messages"),
              std::string::npos)
        << prompt;
  }
  EXPECT_NE(preference_error(R"({"prompt": [{"role": "user", "content": "Q"}], "chosen": )" + turn +
                             R"(, "rejected": "B"})")
                .find("'rejected' must be a non-empty list of messages"),
            std::string::npos);
}

// A file that is one JSON array of records reads as the same records in JSONL; a UTF-8 byte
// order mark at the start of either is skipped; errors name the element.
TEST(Dataset, JsonArrayFilesAndByteOrderMarks) {
  testing::TempDir dir;
  const std::string bom = "\xEF\xBB\xBF";
  const std::string array = dir.write(
      "data.json",
      bom +
          "\n ["
          R"({"prompt": "a", "completion": "b"},)"
          "\n"
          R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}])"
          "\n");
  const auto examples = load_sft_jsonl(array, testing::chat_template(), false);
  ASSERT_EQ(examples.size(), 2u);
  EXPECT_EQ(examples[0].prompt, "a");
  EXPECT_EQ(examples[0].completion, "b");
  EXPECT_EQ(examples[1].completion, "Yo\n");
  const auto lines =
      load_sft_jsonl(dir.write("bom.jsonl", bom + R"({"prompt": "a", "completion": "b"})"
                                                  "\n"),
                     testing::chat_template(), false);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].prompt, "a");
  const std::string bad =
      dir.write("bad.json", R"([{"prompt": "a", "completion": "b"}, {"prompt": "a"}, 3])");
  try {
    load_sft_jsonl(bad, testing::chat_template(), false);
    FAIL() << "expected InvalidArgument";
  } catch (const core::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("bad.json: element 2: missing 'completion'"),
              std::string::npos)
        << e.what();
  }
  LoadReport report;
  EXPECT_EQ(load_sft_jsonl(bad, testing::chat_template(), true, &report).size(), 1u);
  EXPECT_EQ(report.lines, 3u);
  EXPECT_EQ(report.skipped, 2u);
  ASSERT_EQ(report.first_errors.size(), 2u);
  EXPECT_NE(report.first_errors[1].find("element 3: expected a JSON object"), std::string::npos)
      << report.first_errors[1];
  // Blank files read as no record; a JSONL of arrays is named as such.
  EXPECT_TRUE(
      load_sft_jsonl(dir.write("blank.jsonl", bom + " \n\n"), testing::chat_template(), false)
          .empty());
  EXPECT_TRUE(
      load_sft_jsonl(dir.write("empty.jsonl", ""), testing::chat_template(), false).empty());
  try {
    load_sft_jsonl(dir.write("arrays.jsonl", "[1]\n[2]\n"), testing::chat_template(), true);
    FAIL() << "lines of arrays were read";
  } catch (const core::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("JSONL lines are objects"), std::string::npos) << e.what();
  }
  const std::string broken = dir.write("broken.json", R"([{"prompt": "a", )");
  try {
    load_sft_jsonl(broken, testing::chat_template(), true);
    FAIL() << "a broken array was read";
  } catch (const core::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("broken.json: not a valid JSON array"), std::string::npos)
        << e.what();
  }
}

// data.fields: a file's own field names are read as Rudder's, in every loader; a field of
// Rudder's name that the file means otherwise is not read in its place.
TEST(Dataset, FieldsNamedOtherwiseAreReadAsRudders) {
  testing::TempDir dir;
  const FieldNames qa = {{"prompt", "question"}, {"completion", "answer"}};
  const std::string sft =
      dir.write("qa.jsonl", R"({"question": "2+2=", "answer": "4", "prompt": "not this", "id": 1})"
                            "\n"
                            R"({"question": "3+3="})"
                            "\n");
  try {
    load_sft_jsonl(sft, testing::chat_template(), false, nullptr, qa);
    FAIL() << "a line without its answer was read";
  } catch (const core::InvalidArgument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("qa.jsonl:2: missing 'completion'"), std::string::npos) << what;
    EXPECT_NE(what.find("(data.fields reads 'question' as 'prompt', 'answer' as 'completion')"),
              std::string::npos)
        << what;
  }
  try {
    load_sft_jsonl(sft, testing::chat_template(), false);
    FAIL() << "a line without 'completion' was read";
  } catch (const core::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("is read with data.fields"), std::string::npos)
        << e.what();
  }
  const auto examples = load_sft_jsonl(sft, testing::chat_template(), true, nullptr, qa);
  ASSERT_EQ(examples.size(), 1u);
  EXPECT_EQ(examples[0].prompt, "2+2=");
  EXPECT_EQ(examples[0].completion, "4");
  // A file whose preference is the other way round.
  const std::string pref =
      dir.write("pref.jsonl", R"({"prompt": "p", "chosen": "worse", "rejected": "better"})"
                              "\n");
  const auto pairs = load_preference_jsonl(pref, testing::chat_template(), false, nullptr,
                                           {{"chosen", "rejected"}, {"rejected", "chosen"}});
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].chosen, "better");
  EXPECT_EQ(pairs[0].rejected, "worse");
  const auto texts =
      load_labelled_jsonl(dir.write("reviews.jsonl", R"({"review": "great", "positive": 1})"
                                                     "\n"),
                          false, nullptr, {{"text", "review"}, {"label", "positive"}});
  ASSERT_EQ(texts.size(), 1u);
  EXPECT_EQ(texts[0].text, "great");
  EXPECT_TRUE(texts[0].desired);
  EXPECT_THROW(load_sft_jsonl(sft, testing::chat_template(), true, nullptr, {{"prompt", ""}}),
               core::InvalidArgument);
  // A name no record has is a misspelling: refused, not read as a field every record lacks.
  try {
    load_preference_jsonl(pref, testing::chat_template(), true, nullptr,
                          {{"prompt", "instrution"}});
    FAIL() << "a misspelt field name was accepted";
  } catch (const core::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("data.fields.prompt names 'instrution', which no record"),
              std::string::npos)
        << e.what();
  }
}

TEST(Dataset, BadLinesAreNumberedOrSkipped) {
  testing::TempDir dir;
  const std::string path = dir.write("bad.jsonl", R"({"prompt": "a", "completion": "b"})"
                                                  "\n"
                                                  R"({"prompt": "a"})"
                                                  "\n"
                                                  "{not json\n"
                                                  R"({"prompt": 3, "completion": "x"})"
                                                  "\n");
  try {
    load_sft_jsonl(path, testing::chat_template(), false);
    FAIL();
  } catch (const core::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2: missing 'completion'"), std::string::npos)
        << e.what();
  }
  LoadReport report;
  const auto examples = load_sft_jsonl(path, testing::chat_template(), true, &report);
  EXPECT_EQ(examples.size(), 1u);
  EXPECT_EQ(report.lines, 4u);
  EXPECT_EQ(report.skipped, 3u);
  ASSERT_EQ(report.first_errors.size(), 3u);
  EXPECT_NE(report.first_errors[1].find("bad.jsonl:3: not valid JSON"), std::string::npos)
      << report.first_errors[1];

  const std::string mismatched = dir.write(
      "mismatch.jsonl",
      R"({"chosen": [{"role": "user", "content": "A"}, {"role": "assistant", "content": "x"}], "rejected": [{"role": "user", "content": "B"}, {"role": "assistant", "content": "y"}]})"
      "\n");
  EXPECT_THROW(load_preference_jsonl(mismatched, testing::chat_template(), false),
               core::InvalidArgument);
  EXPECT_THROW(load_prompts_jsonl(dir.path() + "/absent.jsonl", testing::chat_template(), false),
               core::NotFound);
}

TEST(Dataset, RankedListsReadWithTheirPairs) {
  testing::TempDir dir;
  const std::string file =
      dir.write("ranked.jsonl",
                "{\"prompt\": \"p\", \"responses\": [\"a\", \"b\", \"c\"], \"ranks\": [2, 1, 2], "
                "\"category\": \"x\"}\n");
  const auto lists = load_ranked_jsonl(file, testing::chat_template(), false);
  ASSERT_EQ(lists.size(), 1u);
  EXPECT_EQ(lists[0].ranks, (std::vector<int64_t>{2, 1, 2}));
  EXPECT_EQ(lists[0].category, "x");
  const auto pairs = pairs_of(lists[0]);
  ASSERT_EQ(pairs.size(), 2u);  // b over a, b over c; a and c tie
  EXPECT_EQ(pairs[0].chosen, "b");
  EXPECT_EQ(pairs[0].rejected, "a");
  EXPECT_EQ(pairs[1].rejected, "c");
  for (const std::string bad :
       {"{\"prompt\": \"p\", \"responses\": [\"a\"], \"ranks\": [1]}",
        "{\"prompt\": \"p\", \"responses\": [\"a\", \"b\"], \"ranks\": [1]}",
        "{\"prompt\": \"p\", \"responses\": [\"a\", \"b\"], \"ranks\": [1, 1]}",
        "{\"prompt\": \"p\", \"responses\": [\"a\", 2], \"ranks\": [1, 2]}"}) {
    const std::string path = dir.write("bad.jsonl", bad + "\n");
    EXPECT_THROW(load_ranked_jsonl(path, testing::chat_template(), false), core::InvalidArgument)
        << bad;
  }
}

TEST(Dataset, LabelledTextsReadTheirClass) {
  testing::TempDir dir;
  const std::string file =
      dir.write("labelled.jsonl",
                "{\"text\": \"great fun\", \"label\": 1}\n{\"text\": \"dull\", \"label\": false, "
                "\"prompt\": \"review:\", \"category\": \"c\"}\n");
  const auto texts = load_labelled_jsonl(file, false);
  ASSERT_EQ(texts.size(), 2u);
  EXPECT_TRUE(texts[0].desired);
  EXPECT_EQ(texts[0].text, "great fun");
  EXPECT_FALSE(texts[1].desired);
  EXPECT_EQ(texts[1].prompt, "review:");
  EXPECT_EQ(texts[1].category, "c");
  for (const std::string bad : {"{\"text\": \"a\"}", "{\"text\": \"a\", \"label\": 2}",
                                "{\"text\": \"a\", \"label\": \"yes\"}",
                                "{\"text\": 3, \"label\": 1}", "{\"text\": \"\", \"label\": 1}"}) {
    const std::string path = dir.write("bad.jsonl", bad + "\n");
    try {
      load_labelled_jsonl(path, false);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const core::InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("bad.jsonl:1"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace rudder::data
