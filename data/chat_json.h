// Conversations as JSON lines write them: the messages of a list and the prompt of a line, read
// alike by the dataset loaders and `rudder generate`.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/chat.h"

namespace rudder::data {

/// The messages of `value`, a non-empty list of {"role": str, "content": ...}, or of ShareGPT's
/// {"from": str, "value": str} with "human" and "gpt" read as user and assistant. A content is
/// a string, or a list of parts ([{"type": "text", "text": str}, ...], as OpenAI's API and
/// multimodal datasets write it) whose texts are joined; other parts are refused. Throws
/// InvalidArgument naming `key` for anything else.
std::vector<ChatMessage> messages_of(const nlohmann::json& value, const char* key);

/// The role of `message` as messages_of reads it ("role" where a message has both it and
/// "from"); empty where it names none.
std::string role_of(const nlohmann::json& message);

/// The key of `line`'s conversation: "messages", else ShareGPT's "conversations" in a line with
/// no "prompt", "completion" or "text"; nullptr where it has none.
const char* conversation_key(const nlohmann::json& line);

/// The "prompt" of `line`: a string, taken as it is, or messages, formatted with
/// `chat_template` and the generation prompt. Throws InvalidArgument when it is missing or
/// malformed.
std::string prompt_of(const nlohmann::json& line, const ChatTemplate& chat_template);

}  // namespace rudder::data
