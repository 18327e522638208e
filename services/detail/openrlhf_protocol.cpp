#include "services/detail/openrlhf_protocol.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/proto_http.h"

namespace rudder::services::detail {
namespace {

using nlohmann::json;

std::vector<std::string> string_list(const json& body, const char* key) {
  const json& list = body.at(key);
  RUDDER_CHECK(list.is_array(), "\"", key, "\" must be a list of strings, got ", list.type_name());
  std::vector<std::string> out;
  out.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    RUDDER_CHECK(list[i].is_string(), "\"", key, "\"[", i, "] must be a string, got ",
                 list[i].type_name());
    out.push_back(list[i].get<std::string>());
  }
  return out;
}

}  // namespace

GetRewardRequest parse_get_reward(std::string_view body, int max_json_depth) {
  RUDDER_CHECK(core::json_depth(body, max_json_depth) <= max_json_depth,
               "JSON body nested deeper than ", max_json_depth, " levels");
  json parsed;
  try {
    parsed = json::parse(body);
  } catch (const json::exception& e) {
    throw core::InvalidArgument(core::str("malformed JSON body: ", e.what()));
  }
  RUDDER_CHECK(parsed.is_object(), "expected a JSON object with \"query\", got ",
               parsed.type_name());
  for (const auto& [key, value] : parsed.items()) {
    RUDDER_CHECK(key == "query" || key == "prompts" || key == "labels", "unknown key \"", key,
                 "\": expected query, prompts, labels");
  }
  RUDDER_CHECK(parsed.contains("query"), "missing \"query\": a list of prompt+response texts");
  GetRewardRequest out;
  out.responses = string_list(parsed, "query");
  const size_t n = out.responses.size();
  if (parsed.contains("labels") && !parsed["labels"].is_null()) {
    RUDDER_CHECK(parsed["labels"].is_array() && parsed["labels"].size() == n,
                 "\"labels\" must be a list as long as \"query\" (", n, ")");
  }
  if (!parsed.contains("prompts") || parsed["prompts"].is_null()) {
    out.prompts.assign(n, "");
    return out;
  }
  out.prompts = string_list(parsed, "prompts");
  RUDDER_CHECK(out.prompts.size() == n, "\"prompts\" has ", out.prompts.size(),
               " texts but \"query\" has ", n);
  for (size_t i = 0; i < n; ++i) {
    RUDDER_CHECK(out.responses[i].compare(0, out.prompts[i].size(), out.prompts[i]) == 0, "query[",
                 i, "] does not start with prompts[", i, "]");
    out.responses[i].erase(0, out.prompts[i].size());
  }
  return out;
}

std::string format_get_reward(const std::vector<rewards::ScoreDetail>& details,
                              const std::vector<int64_t>& tokens) {
  json rewards = json::array();
  for (const auto& d : details) rewards.push_back(d.reward);
  json out;
  out["rewards"] = rewards;
  out["scores"] = rewards;
  out["extra_logs"] = {{"num_tokens", tokens}};
  return out.dump();
}

}  // namespace rudder::services::detail
