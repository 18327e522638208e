// Generating completions for a JSONL file of prompts with any RolloutEngine (`rudder generate`).
//
// The input is JSONL or one JSON array of prompt records, read as training reads its prompts
// (data::for_each_prompt_record): "messages" (ShareGPT's "conversations" too) or "prompt" as
// messages, formatted with the config's chat template and its generation prompt; "prompt" as
// text, used as written; Alpaca's "instruction" and "input". Other keys ("id", ...) are copied
// to the output. Each output line is that object with "samples" added: for each
// sample its "text", "token_ids", "logprobs", "policy_logprobs" and "finish_reason"; and
// "policy_version" (text that is not UTF-8 is written with U+FFFD, token_ids stay exact).
// Records keep their order; blank lines are skipped. Every record is read and
// checked before generation starts; the output is written to a temporary name beside
// `out_path` and renamed when complete, so a failed run leaves no partial file.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "proto/rudder.pb.h"
#include "rollout/engine.h"

namespace rudder::data {
class Tokenizer;
}

namespace rudder::rollout {

/// How generate_jsonl runs.
struct GenerateJsonlOptions {
  SamplingParams sampling;     // every prompt's sampling parameters
  uint32_t n = 1;              // samples per prompt
  ChatTemplate chat_template;  // formats "messages" lines
  bool add_bos = false;        // put the tokenizer's BOS before each prompt
  size_t batch_size = 64;      // prompts handed to the engine at once
  // Called after each batch with (prompts done, prompts in total); may be empty.
  std::function<void(int64_t, int64_t)> progress;
};

/// Completes every prompt of `in_path` into `out_path`; returns the number of prompts. Throws
/// InvalidArgument naming the file and line of a malformed object, NotFound when `in_path`
/// cannot be read.
int64_t generate_jsonl(RolloutEngine& engine, const data::Tokenizer& tokenizer,
                       const std::string& in_path, const std::string& out_path,
                       const GenerateJsonlOptions& options);

}  // namespace rudder::rollout
