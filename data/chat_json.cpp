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

}  // namespace

std::vector<ChatMessage> messages_of(const json& j, const char* key) {
  RUDDER_CHECK(j.is_array() && !j.empty(), "'", key, "' must be a non-empty list of messages");
  std::vector<ChatMessage> out;
  for (const auto& m : j) {
    RUDDER_CHECK(
        m.is_object() && m.contains("role") && m.contains("content") && m.at("role").is_string(),
        "every message of '", key, "' needs a string 'role' and a 'content'");
    out.push_back({m.at("role").get<std::string>(), content_of(m.at("content"), key)});
  }
  return out;
}

std::string prompt_of(const json& line, const ChatTemplate& t) {
  RUDDER_CHECK(line.contains("prompt"), "missing 'prompt'");
  const json& p = line.at("prompt");
  if (p.is_string()) return p.get<std::string>();
  RUDDER_CHECK(p.is_array(), "'prompt' must be a string or a list of messages");
  return format_chat(messages_of(p, "prompt"), t, true);
}

}  // namespace rudder::data
