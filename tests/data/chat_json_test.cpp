#include "data/chat_json.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "proto/rudder.pb.h"

namespace rudder::data {
namespace {

using nlohmann::json;

// The message naming what is wrong with `value` as the messages of "m" ("" when it reads).
std::string messages_error(const json& value) {
  try {
    messages_of(value, "m");
  } catch (const core::InvalidArgument& e) {
    return e.what();
  }
  return "";
}

TEST(ChatJson, MessagesReadStringAndTextPartContents) {
  const auto messages = messages_of(
      json::parse(R"([{"role": "system", "content": "s", "name": "extra keys are ignored"},
                      {"role": "user", "content": [{"type": "text", "text": "a"},
                                                   {"type": "text", "text": "b"}]},
                      {"role": "assistant", "content": []}])"),
      "m");
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(messages[0].role, "system");
  EXPECT_EQ(messages[0].content, "s");
  EXPECT_EQ(messages[1].content, "ab");
  EXPECT_EQ(messages[2].content, "");
}

// ShareGPT's {"from", "value"}: human and gpt are user and assistant; other names stay as they
// are (the chat template refuses what it does not know).
TEST(ChatJson, ShareGptMessagesReadAsRoles) {
  const json value = json::parse(R"([{"from": "system", "value": "s"},
                                     {"from": "human", "value": "q"},
                                     {"from": "gpt", "value": "a"},
                                     {"from": "observation", "value": "o"}])");
  const auto messages = messages_of(value, "m");
  ASSERT_EQ(messages.size(), 4u);
  EXPECT_EQ(messages[0].role, "system");
  EXPECT_EQ(messages[1].role, "user");
  EXPECT_EQ(messages[1].content, "q");
  EXPECT_EQ(messages[2].role, "assistant");
  EXPECT_EQ(messages[2].content, "a");
  EXPECT_EQ(messages[3].role, "observation");
  EXPECT_EQ(role_of(value[2]), "assistant");
  EXPECT_EQ(role_of(json::parse(R"({"role": "gpt", "content": "x"})")), "gpt");  // not ShareGPT's
  EXPECT_EQ(role_of(json::parse(R"({"content": "x"})")), "");
  EXPECT_EQ(role_of(json("text")), "");
  // "role" wins where a message has both.
  const json mixed =
      json::parse(R"([{"role": "user", "from": "gpt", "content": "c", "value": "v"}])");
  EXPECT_EQ(role_of(mixed[0]), "user");
  EXPECT_EQ(messages_of(mixed, "m")[0].content, "c");
}

// "messages", else ShareGPT's "conversations" where no prompt, completion or text is given.
TEST(ChatJson, ConversationKey) {
  const auto key = [](const char* line) {
    const char* k = conversation_key(json::parse(line));
    return std::string(k == nullptr ? "none" : k);
  };
  EXPECT_EQ(key(R"({"messages": [], "conversations": []})"), "messages");
  EXPECT_EQ(key(R"({"conversations": []})"), "conversations");
  EXPECT_EQ(key(R"({"conversations": [], "prompt": "p"})"), "none");
  EXPECT_EQ(key(R"({"conversations": [], "completion": "c"})"), "none");
  EXPECT_EQ(key(R"({"conversations": [], "text": "t"})"), "none");
  EXPECT_EQ(key(R"({"prompt": "p"})"), "none");
}

TEST(ChatJson, MalformedMessagesAreNamed) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"([])", "'m' must be a non-empty list of messages"},
      {R"("text")", "'m' must be a non-empty list of messages"},
      {R"([{"content": "x"}])", "every message of 'm' needs a string 'role' and a 'content'"},
      {R"(["x"])", "every message of 'm' must be an object"},
      {R"([{"from": "human"}])",
       "every ShareGPT message of 'm' needs a string 'from' and a string 'value'"},
      {R"([{"from": "human", "value": ["x"]}])", "needs a string 'from' and a string 'value'"},
      {R"([{"role": "user", "content": 3}])", "a string or a list of text parts"},
      {R"([{"role": "user", "content": [{"text": "x"}]}])", "needs a string 'type'"},
      {R"([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}])",
       "has type 'image_url': only text parts are read"},
      {R"([{"role": "user", "content": [{"type": "text", "text": 1}]}])",
       "a text part of 'm' needs a string 'text'"},
  };
  for (const auto& [value, words] : cases) {
    const std::string error = messages_error(json::parse(value));
    EXPECT_NE(error.find(words), std::string::npos) << value << ": " << error;
  }
}

TEST(ChatJson, PromptIsAStringOrFormattedMessages) {
  ChatTemplate t;
  t.set_user_prefix("U:");
  t.set_user_suffix(";");
  t.set_assistant_prefix("A:");
  EXPECT_EQ(prompt_of(json{{"prompt", "as is"}}, t), "as is");
  EXPECT_EQ(prompt_of(json::parse(R"({"prompt": [{"role": "user", "content": "q"}]})"), t),
            "U:q;A:");
  EXPECT_THROW(prompt_of(json{{"text", "x"}}, t), core::InvalidArgument);
  try {
    prompt_of(json{{"prompt", 3}}, t);
    FAIL() << "a number was read as a prompt";
  } catch (const core::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("'prompt' must be a string or a list of messages"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace rudder::data
