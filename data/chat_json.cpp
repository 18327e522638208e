#include "data/chat_json.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace rudder::data {

using nlohmann::json;

namespace {

// A message's content: a string, or the texts of its parts joined.
std::string content_of(const json& content, const char* key) {
  if (content.is_string()) return content.get<std::string>();
  RUDDER_CHECK(content.is_array(), "every message of '", key,
               "' needs a 'content' that is a string or a list of text parts");
  std::string out;
  for (const auto& part : content) {
    RUDDER_CHECK(part.is_object() && part.contains("type") && part.at("type").is_string(),
                 "every content part of '", key, "' needs a string 'type'");
    const std::string type = part.at("type").get<std::string>();
    RUDDER_CHECK(type == "text", "a content part of '", key, "' has type '", type,
                 "': only text parts are read");
    RUDDER_CHECK(part.contains("text") && part.at("text").is_string(), "a text part of '", key,
                 "' needs a string 'text'");
    out += part.at("text").get<std::string>();
  }
  return out;
}

// ShareGPT writes {"from", "value"} where OpenAI writes {"role", "content"}.
bool is_sharegpt(const json& m) { return !m.contains("role") && m.contains("from"); }

}  // namespace

std::string role_of(const json& m) {
  if (!m.is_object()) return "";
  const bool sharegpt = is_sharegpt(m);
  const json* role = sharegpt ? &m.at("from") : m.contains("role") ? &m.at("role") : nullptr;
  if (role == nullptr || !role->is_string()) return "";
  const std::string name = role->get<std::string>();
  if (sharegpt && name == "human") return "user";
  if (sharegpt && name == "gpt") return "assistant";
  return name;
}

std::vector<ChatMessage> messages_of(const json& j, const char* key) {
  RUDDER_CHECK(j.is_array() && !j.empty(), "'", key, "' must be a non-empty list of messages");
  std::vector<ChatMessage> out;
  for (const auto& m : j) {
    RUDDER_CHECK(m.is_object(), "every message of '", key, "' must be an object");
    if (is_sharegpt(m)) {
      RUDDER_CHECK(m.at("from").is_string() && m.contains("value") && m.at("value").is_string(),
                   "every ShareGPT message of '", key,
                   "' needs a string 'from' and a string 'value'");
      out.push_back({role_of(m), m.at("value").get<std::string>()});
      continue;
    }
    RUDDER_CHECK(m.contains("role") && m.contains("content") && m.at("role").is_string(),
                 "every message of '", key,
                 "' needs a string 'role' and a 'content' (or ShareGPT's 'from' and 'value')");
    out.push_back({role_of(m), content_of(m.at("content"), key)});
  }
  return out;
}

const char* conversation_key(const json& line) {
  if (line.contains("messages")) return "messages";
  if (line.contains("conversations") && !line.contains("prompt") && !line.contains("completion") &&
      !line.contains("text"))
    return "conversations";
  return nullptr;
}

std::string prompt_of(const json& line, const ChatTemplate& t) {
  RUDDER_CHECK(line.contains("prompt"), "missing 'prompt'");
  const json& p = line.at("prompt");
  if (p.is_string()) return p.get<std::string>();
  RUDDER_CHECK(p.is_array(), "'prompt' must be a string or a list of messages");
  return format_chat(messages_of(p, "prompt"), t, true);
}

}  // namespace rudder::data
