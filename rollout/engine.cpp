#include "rollout/engine.h"

#include "core/error.h"
#include "rollout/logits_processors.h"

namespace rudder::rollout {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kEos:
      return "eos";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      break;
  }
  return "length";
}

void validate_sampling(const SamplingParams& p, const std::string& what) {
  RUDDER_CHECK(p.max_new_tokens() >= 1, what, ": max_new_tokens must be at least 1, got ",
               p.max_new_tokens());
  // Bounds that keep every processed score finite in float32 (the logits' dtype).
  RUDDER_CHECK(p.temperature() >= 0 && p.temperature() <= kMaxTemperature, what,
               ": temperature must be in [0, ", kMaxTemperature, "] (below ",
               kGreedyBelowTemperature, " is greedy), got ", p.temperature());
  RUDDER_CHECK(p.top_p() > 0 && p.top_p() <= 1, what, ": top_p must be in (0, 1], got ", p.top_p());
  RUDDER_CHECK(p.min_p() >= 0 && p.min_p() <= 1, what, ": min_p must be in [0, 1], got ",
               p.min_p());
  RUDDER_CHECK(p.repetition_penalty() >= 1.0 / kMaxRepetitionPenalty &&
                   p.repetition_penalty() <= kMaxRepetitionPenalty,
               what, ": repetition_penalty must be in [", 1.0 / kMaxRepetitionPenalty, ", ",
               kMaxRepetitionPenalty, "] (1 is none), got ", p.repetition_penalty());
  RUDDER_CHECK(p.min_new_tokens() <= p.max_new_tokens(), what, ": min_new_tokens (",
               p.min_new_tokens(), ") exceeds max_new_tokens (", p.max_new_tokens(), ")");
  for (const auto& stop : p.stop()) {
    RUDDER_CHECK(!stop.empty(), what, ": a stop string is empty");
  }
}

}  // namespace rudder::rollout
