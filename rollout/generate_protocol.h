// The rollout server's wire format (GenerateRequest, GenerateResponse in the proto) to and from
// the engine's types, shared by the server and RemoteEngine so both read it one way.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "proto/rudder.pb.h"
#include "rollout/engine.h"

namespace rudder::rollout {

/// Splits `requests` into runs [begin, end) that one GenerateRequest can carry: the same
/// sampling parameters, sample count and prompt kind (ids or text), at most `max_samples`
/// samples (a single larger request still goes alone).
std::vector<std::pair<size_t, size_t>> chunk_requests(const std::vector<GenerateInput>& requests,
                                                      size_t max_samples);

/// The GenerateRequest of one chunk (see chunk_requests).
GenerateRequest to_request(const std::vector<GenerateInput>& chunk);

/// One GenerateInput per prompt of `request` (num_samples 0 means 1; zero max_new_tokens, top_p
/// and repetition_penalty take the schema's defaults). Throws InvalidArgument
/// when it holds no prompt, or both text and id prompts.
std::vector<GenerateInput> from_request(const GenerateRequest& request);

/// `text` with each byte that does not start a valid UTF-8 sequence replaced by U+FFFD (proto
/// strings must be UTF-8; a byte-level model may stop inside a character).
std::string valid_utf8(const std::string& text);

/// The completions of `outputs` (one per prompt, in order), grouped by prompt; texts made valid
/// UTF-8 (the token ids are exact).
GenerateResponse to_response(const std::vector<GenerateOutput>& outputs,
                             const std::string& policy_version);

/// The outputs of `chunk` in `reply`; sets `problem` (and returns nothing) when the reply does
/// not match the request: a missing or extra completion, or lengths that disagree.
std::vector<GenerateOutput> from_response(const GenerateResponse& reply,
                                          const std::vector<GenerateInput>& chunk,
                                          std::string* problem);

/// The file whose SHA-256 a WeightUpdate of `path` carries: <path>/model.safetensors for a
/// directory, else `path` itself.
std::string weights_file(const std::string& path);

}  // namespace rudder::rollout
