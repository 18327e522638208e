// Scoring a JSONL file with any RewardModel (`rudder score`).
//
// Each input line is an object with "prompt" and either "response" (one pair) or "chosen" and
// "rejected" (a preference pair, both scored). Each output line is the input object with
// "reward" added, or "chosen_reward", "rejected_reward" and "margin" (chosen minus rejected).
// Lines keep their order; blank lines are skipped. The output is written to a temporary name
// beside `out_path` and renamed when complete, so a failed run leaves no partial file.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "rewards/reward_model.h"

namespace rudder::rewards {

/// How score_jsonl runs.
struct ScoreJsonlOptions {
  size_t batch_size = 64;  // pairs sent to the model at once
  // Called after each batch with (lines done, lines in total); may be empty.
  std::function<void(int64_t, int64_t)> progress;
};

/// What score_jsonl did.
struct ScoreJsonlResult {
  int64_t lines = 0;  // objects scored
  int64_t pairs = 0;  // prompt/response pairs scored (preference pairs count two)
};

/// Scores every line of `in_path` into `out_path`. Throws InvalidArgument naming the file and
/// line of a malformed object, NotFound when `in_path` cannot be read.
ScoreJsonlResult score_jsonl(RewardModel& model, const std::string& in_path,
                             const std::string& out_path, const ScoreJsonlOptions& options = {});

}  // namespace rudder::rewards
