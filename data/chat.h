// Chat formatting from role prefixes and suffixes declared in the config (not Jinja).
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace rudder {
class ChatTemplate;
}

namespace rudder::data {

/// One message of a conversation.
struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

/// Byte range [first, second) of a text.
using TextSpan = std::pair<size_t, size_t>;

/// Each message as prefix + content + suffix of its role; with `add_generation_prompt`, the
/// assistant prefix follows (the prompt a model completes). With `assistant_spans`, the range of
/// each assistant message's content and suffix in the result is appended there (what a model
/// learns of that turn). Throws InvalidArgument for an unknown role.
std::string format_chat(const std::vector<ChatMessage>& messages, const ChatTemplate& chat_template,
                        bool add_generation_prompt,
                        std::vector<TextSpan>* assistant_spans = nullptr);

}  // namespace rudder::data
