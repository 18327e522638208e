#include "data/chat.h"

#include "core/error.h"
#include "proto/rudder.pb.h"

namespace rudder::data {

std::string format_chat(const std::vector<ChatMessage>& messages, const ChatTemplate& t,
                        bool add_generation_prompt, std::vector<TextSpan>* assistant_spans) {
  std::string out;
  for (const auto& m : messages) {
    if (m.role == "system")
      out += t.system_prefix() + m.content + t.system_suffix();
    else if (m.role == "user")
      out += t.user_prefix() + m.content + t.user_suffix();
    else if (m.role == "assistant") {
      out += t.assistant_prefix();
      const size_t begin = out.size();
      out += m.content + t.assistant_suffix();
      if (assistant_spans != nullptr) assistant_spans->emplace_back(begin, out.size());
    } else
      throw core::InvalidArgument(
          core::str("unknown chat role '", m.role, "' (expected system, user or assistant)"));
  }
  if (add_generation_prompt) out += t.assistant_prefix();
  return out;
}

}  // namespace rudder::data
