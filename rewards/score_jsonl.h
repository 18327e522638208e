// Scoring a data file with any RewardModel (`rudder score`).
//
// The input is JSONL or one JSON array of records, read as training reads its data
// (data::for_each_scoring_record): a record with "chosen" or "rejected" is a preference pair in
// any layout the preference loader reads (both responses scored); any other is one prompt and
// response: {"prompt", "response"} or a supervised layout ("messages", "completion", Alpaca's,
// "text"). Message lists are formatted with the chat template, and data.fields renames fields
// as in training. Each output line is the input record as the file has it with "reward" added,
// or "chosen_reward", "rejected_reward" and "margin" (chosen minus rejected). Records keep their
// order. The output is written to a temporary name beside `out_path` and renamed when complete,
// so a failed run leaves no partial file.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "data/dataset.h"
#include "rewards/reward_model.h"

namespace rudder::rewards {

/// How score_jsonl runs.
struct ScoreJsonlOptions {
  size_t batch_size = 64;  // pairs sent to the model at once
  // Called after each batch with (records done, records in total; -1 for a JSON array file,
  // whose records are not counted ahead); may be empty.
  std::function<void(int64_t, int64_t)> progress;
  ChatTemplate chat_template;  // formats message lists (tokenizer.chat_template)
  data::FieldNames fields;     // data.fields
  bool skip_bad = false;       // data.on_bad_line: skip (else the first bad record throws)
};

/// What score_jsonl did.
struct ScoreJsonlResult {
  int64_t lines = 0;    // records scored
  int64_t pairs = 0;    // prompt/response pairs scored (preference pairs count two)
  int64_t skipped = 0;  // bad records skipped (skip_bad)
};

/// Scores every record of `in_path` into `out_path`. Throws InvalidArgument naming the file and
/// line (or array element) of a malformed record, NotFound when `in_path` cannot be read.
ScoreJsonlResult score_jsonl(RewardModel& model, const std::string& in_path,
                             const std::string& out_path, const ScoreJsonlOptions& options = {});

}  // namespace rudder::rewards
