// Chat formatting from role prefixes and suffixes declared in the config (not Jinja).
#pragma once

#include <string>
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

/// Each message as prefix + content + suffix of its role; with `add_generation_prompt`, the
/// assistant prefix follows (the prompt a model completes). Throws InvalidArgument for an
/// unknown role.
std::string format_chat(const std::vector<ChatMessage>& messages, const ChatTemplate& chat_template,
                        bool add_generation_prompt);

}  // namespace rudder::data
