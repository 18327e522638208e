// JSONL datasets: supervised examples, preference pairs and prompts, read line by line with
// line-numbered errors; a file that is one JSON array of the same records is read too, element
// by element. Accepted layouts (the common Hugging Face ones):
//
//   SFT         {"prompt": str|messages, "completion": str|messages} (completion messages open
//               with the assistant's turn and need prompt messages)
//               | {"messages": [{"role", "content"}, ...]} (the last turn, the assistant's, is
//               the completion; the earlier assistant turns are marked in the prompt)
//               | {"text": str} (plain language modelling: no prompt)
//               | {"instruction": str, "input": str, "output": str} (Alpaca's: instruction and
//               input, where not empty, on two lines as one user turn; optional "system", and
//               "history": [[instruction, response], ...], the turns before it)
//   preference  {"prompt": str|messages, "chosen": str|messages, "rejected": str|messages}
//               (UltraFeedback-binarized: chosen/rejected are whole conversations ending with the
//               assistant turn; TRL's conversational layout, with prompt messages: they are the
//               messages after the prompt, opening with the assistant's, both of them messages)
//               | {"chosen": str, "rejected": str}
//               (HH-RLHF: the shared prefix up to the last "Assistant:" is the prompt)
//               | {"instruction", "input", "chosen": str, "rejected": str} (Alpaca's, as above);
//               optional "margin": number
//   ranked      {"prompt": str|messages, "responses": [str, ...], "ranks": [int, ...]} (one rank
//               per response, smaller is better; equal ranks are ties)
//   prompts     {"prompt": str|messages} | {"messages": [...]} | Alpaca's without "output"
//   labelled    {"text": str, "label": 0|1|false|true} (1: the desired class; GeDi's data);
//               optional "prompt": str, read before the text
//
// Any line may carry "category": str. Message lists are formatted with the chat template; plain
// strings are taken as they are. A message's content is a string or a list of parts
// ([{"type": "text", "text": str}, ...]), whose texts are joined; other parts are refused.
// ShareGPT's layout reads too: a line's "conversations" are its "messages" where it has none,
// and a message may be {"from", "value"} ("human" and "gpt" are user and assistant).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/chat.h"
#include "proto/rudder.pb.h"

namespace rudder::data {

/// A prompt and the response to learn.
struct SftExample {
  std::string prompt;
  std::string completion;
  std::string category;
  /// The earlier assistant turns of a "messages" line (or of an Alpaca line's "history"): their
  /// ranges in `prompt` (content and suffix), learned too when sft.all_assistant_turns is on.
  std::vector<TextSpan> assistant_turns;
};

/// A prompt with a preferred and a dispreferred response.
struct PreferencePair {
  std::string prompt;
  std::string chosen;
  std::string rejected;
  double margin = 0.0;  // optional per-pair margin for the Bradley-Terry loss
  std::string category;
};

/// A prompt with responses ranked by preference (ranked-list reward-model data).
struct RankedList {
  std::string prompt;
  std::vector<std::string> responses;
  std::vector<int64_t> ranks;  // one per response; smaller is better
  std::string category;
};

/// A prompt to sample from.
struct PromptExample {
  std::string prompt;
  std::string category;
  std::string reference;  // a known good answer, when there is one
};

/// A text of one of two classes (a class-conditional LM's data): `desired` for the class of the
/// desired control code. The model reads prompt + text.
struct LabelledText {
  std::string prompt;
  std::string text;
  bool desired = true;
  std::string category;
};

/// How a file loaded.
struct LoadReport {
  size_t lines = 0;                       // records read: non-empty lines, or array elements
  size_t skipped = 0;                     // bad lines skipped (on_bad_line: skip)
  std::vector<std::string> first_errors;  // up to 10 messages of skipped lines
};

/// The fields a file names otherwise (data.fields): pairs of Rudder's name and the file's, read
/// as Rudder's (a field of Rudder's name in the file is then not read); empty: every field under
/// its own name. A file's name that no record of a non-empty file has is refused.
using FieldNames = std::vector<std::pair<std::string, std::string>>;

/// The fields `fields` (data.fields) names otherwise, for the loaders.
FieldNames field_names(const DataFields& fields);

/// The records of `path` as the loaders read them: its non-empty lines, or -1 for a file that
/// is one JSON array (counting its elements would parse it). Throws NotFound when it cannot be
/// opened.
int64_t count_records(const std::string& path);

/// Loads SFT examples. With `skip_bad`, malformed lines are counted in `report` and skipped;
/// otherwise the first one throws InvalidArgument "path:LINE: what" ("path: element N: what"
/// in a JSON array file). Every loader reads a record's fields by `fields`.
std::vector<SftExample> load_sft_jsonl(const std::string& path, const ChatTemplate& chat_template,
                                       bool skip_bad, LoadReport* report = nullptr,
                                       const FieldNames& fields = {});

/// Loads preference pairs (see the layouts above).
std::vector<PreferencePair> load_preference_jsonl(const std::string& path,
                                                  const ChatTemplate& chat_template, bool skip_bad,
                                                  LoadReport* report = nullptr,
                                                  const FieldNames& fields = {});

/// Loads ranked lists: at least two responses, one rank each, not all ranks equal.
std::vector<RankedList> load_ranked_jsonl(const std::string& path,
                                          const ChatTemplate& chat_template, bool skip_bad,
                                          LoadReport* report = nullptr,
                                          const FieldNames& fields = {});

/// Loads labelled texts (see the layouts above).
std::vector<LabelledText> load_labelled_jsonl(const std::string& path, bool skip_bad,
                                              LoadReport* report = nullptr,
                                              const FieldNames& fields = {});

/// Every pair of `list` with different ranks (chosen: the better rank), in list order.
std::vector<PreferencePair> pairs_of(const RankedList& list);

/// A record to score (`rudder score`) as the reward model reads it: a preference pair where the
/// record has "chosen" or "rejected" (any preference layout above), else one prompt and
/// response: {"prompt": str|messages, "response": str|messages} (response messages open with the
/// assistant's turn and need prompt messages) or any SFT layout above, its completion the
/// response.
struct ScoringRecord {
  bool preference = false;
  std::string prompt;
  std::string response;  // the chosen one of a pair
  std::string rejected;  // a pair's only
};

/// Calls `each` with every record of `path` as the file has it (before data.fields renames its
/// fields) and as read, in file order; bad records as the loaders treat them. A data.fields name
/// that no record has is logged, not refused (the config's fields are its training file's). A
/// core::InvalidArgument thrown by `each` is taken for a fault of the record just read: throw
/// another type for a failure of the caller's own.
void for_each_scoring_record(const std::string& path, const ChatTemplate& chat_template,
                             bool skip_bad, LoadReport* report, const FieldNames& fields,
                             const std::function<void(const nlohmann::json&, ScoringRecord)>& each);

/// Loads prompts.
std::vector<PromptExample> load_prompts_jsonl(const std::string& path,
                                              const ChatTemplate& chat_template, bool skip_bad,
                                              LoadReport* report = nullptr,
                                              const FieldNames& fields = {});

/// Calls `each` with every record of `path` as the file has it and its prompt as
/// load_prompts_jsonl reads it, in file order, the first bad record thrown (`rudder generate`,
/// which echoes each record). The file's fields are read under their own names.
void for_each_prompt_record(const std::string& path, const ChatTemplate& chat_template,
                            const std::function<void(const nlohmann::json&, std::string)>& each);

/// A prompt and responses sampled for it.
struct PromptSamples {
  std::string prompt;
  std::vector<std::string> responses;
};

/// Loads prompts with their samples: any prompt layout above with "responses": [str, ...], or
/// `rudder generate`'s output lines, whose "samples" are [{"text": str, ...}, ...]. At least one
/// response each.
std::vector<PromptSamples> load_prompt_samples_jsonl(const std::string& path,
                                                     const ChatTemplate& chat_template,
                                                     bool skip_bad, LoadReport* report = nullptr);

}  // namespace rudder::data
