// OpenRLHF's remote reward protocol (POST /get_reward), as a compatibility target.
//
// Request: {"query": [text, ...], "prompts": [text, ...], "labels": [any, ...]}; "prompts" and
// "labels" may be absent. Each query is the prompt followed by the response. With "prompts",
// query i must start with prompts[i] and the response is the rest; without them the whole
// query is scored as the response to an empty prompt (a learned reward model then sees the
// same tokens, only without the prompt/response split). "labels" (references for rule
// rewards) are accepted and not used by a learned reward model.
// Response: {"rewards": [float, ...], "scores": [float, ...] (the same values), "extra_logs":
// {"num_tokens": [int, ...]}} (per-sample numbers only, so a client may tensorize them).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rewards/reward_model.h"

namespace rudder::services::detail {

/// A /get_reward body in native types.
struct GetRewardRequest {
  std::vector<std::string> prompts;
  std::vector<std::string> responses;
};

/// Parses a /get_reward body; throws InvalidArgument naming the key or index that is wrong
/// (not JSON, deeper than `max_json_depth`, a non-string text, lists of different lengths, a
/// query that does not start with its prompt).
GetRewardRequest parse_get_reward(std::string_view body, int max_json_depth);

/// The /get_reward response body for `details` (one per query) and their token counts.
std::string format_get_reward(const std::vector<rewards::ScoreDetail>& details,
                              const std::vector<int64_t>& tokens);

}  // namespace rudder::services::detail
