// Helpers of the rollout server tests: tiny seeded policies saved as model directories, an
// in-process server on 127.0.0.1, and the local engine's answers to compare with.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/http_client.h"
#include "models/causal_lm.h"
#include "rollout/engine.h"
#include "rollout/logits_processors.h"
#include "services/rollout_server.h"

namespace rudder::services::testing {

/// A 2-layer, 32-wide Llama over the byte tokenizer's 260 ids (96 positions) drawn from `seed`,
/// with weights scaled up so next-token distributions are peaked and varied.
std::shared_ptr<models::CausalLM> tiny_policy(uint64_t seed);

/// A RolloutServer on 127.0.0.1 (a free port) serving `model` with the byte tokenizer, guided
/// by `guidance`.
std::unique_ptr<RolloutServer> start_rollout_server(
    const models::CausalLM& model, const std::string& rollout_server_yaml = "{}", int threads = 16,
    size_t max_body_bytes = 1u << 20,
    std::vector<std::shared_ptr<rollout::LogitsProcessor>> guidance = {});

/// What a LocalEngine over `model` (byte tokenizer, its EOS) answers to `requests`.
std::vector<rollout::GenerateOutput> local_generate(
    const models::CausalLM& model, const std::vector<rollout::GenerateInput>& requests);

/// A request for `prompt` text: `max_new` tokens at `temperature` (0 greedy) with `seed`.
rollout::GenerateInput text_request(const std::string& prompt, uint32_t max_new, double temperature,
                                    uint64_t seed, uint32_t n = 1);

}  // namespace rudder::services::testing
