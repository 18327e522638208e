// OpenRLHF's remote reward protocol (POST /get_reward), as a compatibility target.
//
// Request: {"query": [text, ...], "prompts": [text, ...], "labels": [any, ...]}; "prompts" and
// "labels" may be absent, and other keys (which forks add) are ignored. Each query is a decoded
// sequence: the prompt followed by the response, perhaps with padding and EOS text around it
// (OpenRLHF decodes padded sequences with their special tokens). Runs of the served tokenizer's
// pad and EOS texts are cut from both ends of each query, as OpenRLHF's own reward server does.
// With "prompts", the response is what follows prompts[i] in query i (at its start, or else
// after its first occurrence); a query that does not hold its prompt (cut to the client's
// prompt length, or decoded to other text) is scored whole, as without "prompts": the whole
// query as the response to an empty prompt (a learned reward model then sees the same tokens,
// only without the prompt/response split). "labels" (references for rule rewards) are accepted
// and not used by a learned reward model. An empty "query" is answered with empty lists (a
// client splitting a batch over several servers may send one).
// A query longer than the model reads (its data.max_length) is scored as the model reads it,
// cut as in training (the prompt's last data.max_prompt_length tokens, then the response up to
// the limit), as OpenRLHF's own server truncates at its --max_len; the server's
// max_sequence_tokens still bounds what is read.
// Response: {"rewards": [float, ...], "scores": [float, ...] (the same values), "extra_logs":
// {"num_tokens": [int, ...] (tokens read), "truncated": [0 or 1, ...], "prompt_found": [0 or 1,
// ...] (with "prompts")}}: per-sample numbers only, so a client may tensorize them; the means
// of truncated and prompt_found, which OpenRLHF logs, show how many queries were cut and how
// many were split at their prompt.
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
  /// With "prompts": 1 where query i held prompts[i], 0 where it is scored whole. Else empty.
  std::vector<int> prompt_found;
};

/// Parses a /get_reward body, cutting `edge_texts` (the served tokenizer's pad and EOS texts)
/// from the ends of each query; throws InvalidArgument naming the key or index that is wrong
/// (not JSON, deeper than `max_json_depth`, no "query", a non-string text, lists of different
/// lengths).
GetRewardRequest parse_get_reward(std::string_view body, int max_json_depth,
                                  const std::vector<std::string>& edge_texts = {});

/// The /get_reward response body for `details` (one per query), the tokens read of each, whether
/// each was cut to what the model reads and, when not empty, whether each held its prompt.
std::string format_get_reward(const std::vector<rewards::ScoreDetail>& details,
                              const std::vector<int64_t>& tokens,
                              const std::vector<int>& prompt_found,
                              const std::vector<int>& truncated);

}  // namespace rudder::services::detail
