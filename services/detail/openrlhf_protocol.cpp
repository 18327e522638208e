#include "services/detail/openrlhf_protocol.h"

#include <string.h>  // memmem

#include <string_view>

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

// `text` without the runs of `edges` (non-empty texts) at its start and at its end; one pass
// over the text however long the runs.
std::string without_edges(const std::string& text, const std::vector<std::string>& edges) {
  const std::string_view all(text);
  size_t begin = 0, end = text.size();
  for (bool cut = true; cut;) {
    cut = false;
    for (const auto& e : edges) {
      if (!e.empty() && all.substr(begin, end - begin).rfind(e, 0) == 0) {
        begin += e.size();
        cut = true;
      }
    }
  }
  for (bool cut = true; cut;) {
    cut = false;
    for (const auto& e : edges) {
      if (!e.empty() && end - begin >= e.size() && all.substr(end - e.size(), e.size()) == e) {
        end -= e.size();
        cut = true;
      }
    }
  }
  return text.substr(begin, end - begin);
}

// Where `prompt` first occurs in `query` (npos if nowhere). glibc's memmem falls back to the
// Two-Way algorithm, linear in the texts' lengths whatever they hold; libstdc++'s
// std::boyer_moore_searcher took time quadratic in a periodic prompt ("zzz...").
size_t find_prompt(const std::string& query, const std::string& prompt) {
  if (query.compare(0, prompt.size(), prompt) == 0) return 0;
  const void* found = ::memmem(query.data(), query.size(), prompt.data(), prompt.size());
  return found == nullptr ? std::string::npos
                          : static_cast<size_t>(static_cast<const char*>(found) - query.data());
}

}  // namespace

GetRewardRequest parse_get_reward(std::string_view body, int max_json_depth,
                                  const std::vector<std::string>& edge_texts) {
  RUDDER_CHECK(core::json_depth(body, max_json_depth) <= max_json_depth,
               "JSON body nested deeper than ", max_json_depth, " levels");
  // The JSON parser would take a NUL byte for the end of the input and ignore what follows it.
  const size_t nul = body.find('\0');
  RUDDER_CHECK(nul == std::string_view::npos, "malformed JSON body: a NUL byte at offset ", nul);
  json parsed;
  try {
    parsed = json::parse(body);
  } catch (const json::exception& e) {
    throw core::InvalidArgument(core::str("malformed JSON body: ", e.what()));
  }
  RUDDER_CHECK(parsed.is_object(), "expected a JSON object with \"query\", got ",
               parsed.type_name());
  RUDDER_CHECK(parsed.contains("query"), "missing \"query\": a list of prompt+response texts");
  GetRewardRequest out;
  out.responses = string_list(parsed, "query");
  for (auto& query : out.responses) query = without_edges(query, edge_texts);
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
  out.prompt_found.assign(n, 0);
  for (size_t i = 0; i < n; ++i) {
    std::string& query = out.responses[i];
    const std::string& prompt = out.prompts[i];
    const size_t at = find_prompt(query, prompt);
    if (at == std::string::npos) {
      out.prompts[i].clear();  // scored whole
      continue;
    }
    query.erase(0, at + prompt.size());
    out.prompt_found[i] = 1;
  }
  return out;
}

std::string format_get_reward(const std::vector<rewards::ScoreDetail>& details,
                              const std::vector<int64_t>& tokens,
                              const std::vector<int>& prompt_found,
                              const std::vector<int>& truncated) {
  json rewards = json::array();
  for (const auto& d : details) rewards.push_back(d.reward);
  json out;
  out["rewards"] = rewards;
  out["scores"] = rewards;
  out["extra_logs"] = {{"num_tokens", tokens}, {"truncated", truncated}};
  if (!prompt_found.empty()) out["extra_logs"]["prompt_found"] = prompt_found;
  return out.dump();
}

}  // namespace rudder::services::detail
