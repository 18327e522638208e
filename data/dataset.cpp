#include "data/dataset.h"

#include <algorithm>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "data/chat.h"
#include "data/chat_json.h"
#include "data/detail/records.h"

namespace rudder::data {
namespace {

using core::str;
using nlohmann::json;

std::string string_field(const json& line, const char* key) {
  RUDDER_CHECK(line.contains(key), "missing '", key, "'");
  RUDDER_CHECK(line.at(key).is_string(), "'", key, "' must be a string");
  return line.at(key).get<std::string>();
}

std::string category_of(const json& line) {
  if (!line.contains("category")) return "";
  RUDDER_CHECK(line.at("category").is_string(), "'category' must be a string");
  return line.at("category").get<std::string>();
}

// A response given as the messages that follow a prompt given as messages, the first of them
// the assistant's (TRL's conversational layouts): formatted as the chat template goes on after
// the generation prompt.
std::string completion_of(const json& value, const char* key, const ChatTemplate& t) {
  const std::vector<ChatMessage> messages = messages_of(value, key);
  RUDDER_CHECK(messages.front().role == "assistant", "the first message of '", key,
               "' must be the assistant's");
  const std::vector<ChatMessage> rest(messages.begin() + 1, messages.end());
  return messages.front().content + t.assistant_suffix() + format_chat(rest, t, false);
}

// Whether `line` is in Alpaca's layout (LLaMA-Factory's): "instruction", optional "input",
// "system" and "history"; "output" the response, or "chosen" and "rejected".
bool is_alpaca(const json& line) {
  return line.contains("instruction") && !line.contains("prompt") && !conversation_key(line);
}

// An Alpaca line's prompt: its system prompt (where given), the turns of its history
// ([[instruction, response], ...]), then its instruction and its input (where not empty) on a
// new line as one user turn, with the generation prompt. With `assistant_turns`, the ranges of
// the history's responses go there.
std::string alpaca_prompt(const json& line, const ChatTemplate& t,
                          std::vector<TextSpan>* assistant_turns = nullptr) {
  std::string user = string_field(line, "instruction");
  const std::string input = line.contains("input") ? string_field(line, "input") : "";
  if (!input.empty()) user += "\n" + input;
  std::vector<ChatMessage> messages;
  if (line.contains("system")) messages.push_back({"system", string_field(line, "system")});
  if (line.contains("history") && !line.at("history").is_null()) {
    const json& history = line.at("history");
    RUDDER_CHECK(history.is_array(), "'history' must be a list of [instruction, response] pairs");
    for (size_t i = 0; i < history.size(); ++i) {
      const json& turn = history[i];
      RUDDER_CHECK(
          turn.is_array() && turn.size() == 2 && turn[0].is_string() && turn[1].is_string(),
          "'history' turn ", i, " must be an [instruction, response] pair of strings");
      messages.push_back({"user", turn[0].get<std::string>()});
      messages.push_back({"assistant", turn[1].get<std::string>()});
    }
  }
  messages.push_back({"user", user});
  return format_chat(messages, t, true, assistant_turns);
}

// A response after a conversation: one assistant message, formatted as its turn goes on, or a
// string, taken as it is.
std::string reply_of(const json& value, const char* key, const ChatTemplate& t) {
  if (value.is_object()) return completion_of(json::array({value}), key, t);
  RUDDER_CHECK(value.is_string(), "'", key, "' must be a string or one assistant message");
  return value.get<std::string>();
}

// Whether `value` is a list of messages that opens with the assistant's turn: a response to a
// prompt given apart, not a conversation holding its own context.
bool is_completion_messages(const json& value) {
  return value.is_array() && !value.empty() && role_of(value.front()) == "assistant";
}

// Whether `line` has a "prompt" given as messages.
bool has_prompt_messages(const json& line) {
  return line.contains("prompt") && line.at("prompt").is_array();
}

// The response `key` of a line with a "prompt": a string as it is, or the messages after prompt
// messages (completion_of).
std::string response_after_prompt(const json& line, const char* key, const ChatTemplate& t) {
  if (!line.at(key).is_array()) return string_field(line, key);
  RUDDER_CHECK(has_prompt_messages(line), "'", key,
               "' is a list of messages, so 'prompt' must be one too");
  return completion_of(line.at(key), key, t);
}

// Splits a conversation ending with an assistant turn into (prompt, response); with
// `assistant_turns`, the ranges of the prompt's assistant turns go there.
std::pair<std::string, std::string> split_conversation(
    const std::vector<ChatMessage>& messages, const char* key, const ChatTemplate& t,
    std::vector<TextSpan>* assistant_turns = nullptr) {
  RUDDER_CHECK(messages.back().role == "assistant", "the last message of '", key,
               "' must be the assistant's");
  const std::vector<ChatMessage> context(messages.begin(), messages.end() - 1);
  return {format_chat(context, t, true, assistant_turns),
          messages.back().content + t.assistant_suffix()};
}

// Calls `parse` on each record of `path` under Rudder's field names (detail::for_each_record).
void for_each_line(const std::string& path, bool skip_bad, LoadReport* report,
                   const FieldNames& fields, const std::function<void(const json&)>& parse) {
  detail::RecordOptions options;
  options.fields = fields;
  options.skip_bad = skip_bad;
  detail::for_each_record(path, options, report,
                          [&](const json& line, const json& /*as_in_file*/) { parse(line); });
}

// HH-RLHF: the prompt is the shared prefix of both dialogues, up to the last "Assistant:". Two
// responses without that turn in common are no dialogues: a record without its prompt.
std::string shared_prompt(const std::string& a, const std::string& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  const std::string common = a.substr(0, n);
  const size_t marker = common.rfind("Assistant:");
  RUDDER_CHECK(marker != std::string::npos,
               "missing 'prompt' ('chosen' and 'rejected' are strings without the shared "
               "\"Assistant:\" turn of HH-RLHF's dialogues)");
  return common.substr(0, marker + std::string("Assistant:").size());
}

// One SFT record (see the layouts in dataset.h).
SftExample sft_example(const json& line, const ChatTemplate& t) {
  SftExample ex;
  ex.category = category_of(line);
  if (const char* key = conversation_key(line)) {
    std::tie(ex.prompt, ex.completion) =
        split_conversation(messages_of(line.at(key), key), key, t, &ex.assistant_turns);
  } else if (line.contains("completion")) {
    ex.prompt = prompt_of(line, t);
    ex.completion = response_after_prompt(line, "completion", t);
  } else if (is_alpaca(line)) {
    ex.prompt = alpaca_prompt(line, t, &ex.assistant_turns);
    ex.completion = string_field(line, "output") + t.assistant_suffix();
  } else {
    RUDDER_CHECK(line.contains("text") && !line.contains("prompt"),
                 "missing 'completion' (or 'messages', or 'text' alone)");
    ex.completion = string_field(line, "text");  // plain language modelling: no prompt
  }
  RUDDER_CHECK(!ex.completion.empty(), "empty completion");
  return ex;
}

// One preference record (see the layouts in dataset.h).
PreferencePair preference_pair(const json& line, const ChatTemplate& t) {
  PreferencePair p;
  p.category = category_of(line);
  for (const char* key : {"chosen", "rejected"})
    RUDDER_CHECK(line.contains(key), "missing '", key, "'");
  const json& chosen = line.at("chosen");
  const json& rejected = line.at("rejected");
  if (line.contains("conversations") && !line.contains("prompt")) {
    // ShareGPT's preference layout (LLaMA-Factory's): the conversation so far, then each
    // response as one assistant message or as a string.
    p.prompt = format_chat(messages_of(line.at("conversations"), "conversations"), t, true);
    p.chosen = reply_of(chosen, "chosen", t);
    p.rejected = reply_of(rejected, "rejected", t);
  } else if (is_alpaca(line) && chosen.is_string() && rejected.is_string()) {
    // Alpaca's preference layout (LLaMA-Factory's): each response a string, as "output" is.
    p.prompt = alpaca_prompt(line, t);
    p.chosen = string_field(line, "chosen") + t.assistant_suffix();
    p.rejected = string_field(line, "rejected") + t.assistant_suffix();
  } else if (is_completion_messages(chosen) || is_completion_messages(rejected)) {
    RUDDER_CHECK(has_prompt_messages(line),
                 "'chosen' or 'rejected' opens with the assistant's turn, so the line needs "
                 "its 'prompt' as messages");
    // TRL's conversational layout with the prompt apart: the responses are the messages that
    // follow it (both of them messages).
    p.prompt = prompt_of(line, t);
    p.chosen = completion_of(chosen, "chosen", t);
    p.rejected = completion_of(rejected, "rejected", t);
  } else if (chosen.is_array() || rejected.is_array()) {
    const auto c = split_conversation(messages_of(chosen, "chosen"), "chosen", t);
    const auto r = split_conversation(messages_of(rejected, "rejected"), "rejected", t);
    RUDDER_CHECK(c.first == r.first,
                 "'chosen' and 'rejected' have different conversation contexts");
    p.prompt = c.first;
    p.chosen = c.second;
    p.rejected = r.second;
    if (line.contains("prompt") && line.at("prompt").is_array()) p.prompt = prompt_of(line, t);
  } else if (line.contains("prompt")) {
    p.prompt = prompt_of(line, t);
    p.chosen = string_field(line, "chosen");
    p.rejected = string_field(line, "rejected");
  } else {
    const std::string a = string_field(line, "chosen");
    const std::string b = string_field(line, "rejected");
    p.prompt = shared_prompt(a, b);
    p.chosen = a.substr(p.prompt.size());
    p.rejected = b.substr(p.prompt.size());
  }
  RUDDER_CHECK(!p.chosen.empty() && !p.rejected.empty(), "empty chosen or rejected response");
  if (line.contains("margin")) {
    RUDDER_CHECK(line.at("margin").is_number(), "'margin' must be a number");
    p.margin = line.at("margin").get<double>();
  }
  return p;
}

// A prompt record's prompt: its conversation, Alpaca's instruction, or "prompt".
std::string prompt_text(const json& line, const ChatTemplate& t) {
  if (const char* key = conversation_key(line))
    return format_chat(messages_of(line.at(key), key), t, true);
  if (is_alpaca(line)) return alpaca_prompt(line, t);
  RUDDER_CHECK(line.contains("prompt"),
               "missing 'prompt' (or 'messages', ShareGPT's 'conversations', or Alpaca's "
               "'instruction')");
  return prompt_of(line, t);
}

}  // namespace

std::vector<SftExample> load_sft_jsonl(const std::string& path, const ChatTemplate& t,
                                       bool skip_bad, LoadReport* report,
                                       const FieldNames& fields) {
  std::vector<SftExample> out;
  for_each_line(path, skip_bad, report, fields,
                [&](const json& line) { out.push_back(sft_example(line, t)); });
  return out;
}

std::vector<PreferencePair> load_preference_jsonl(const std::string& path, const ChatTemplate& t,
                                                  bool skip_bad, LoadReport* report,
                                                  const FieldNames& fields) {
  std::vector<PreferencePair> out;
  for_each_line(path, skip_bad, report, fields,
                [&](const json& line) { out.push_back(preference_pair(line, t)); });
  return out;
}

void for_each_scoring_record(const std::string& path, const ChatTemplate& t, bool skip_bad,
                             LoadReport* report, const FieldNames& fields,
                             const std::function<void(const json&, ScoringRecord)>& each) {
  detail::RecordOptions options;
  options.fields = fields;
  options.skip_bad = skip_bad;
  options.fields_required = false;  // the fields a training config names for its own file
  detail::for_each_record(path, options, report, [&](const json& line, const json& as_in_file) {
    ScoringRecord r;
    if (line.contains("chosen") || line.contains("rejected")) {
      RUDDER_CHECK(!line.contains("response"),
                   "has both 'response' and 'chosen'/'rejected'; keep one form");
      PreferencePair p = preference_pair(line, t);
      r.preference = true;
      r.prompt = std::move(p.prompt);
      r.response = std::move(p.chosen);
      r.rejected = std::move(p.rejected);
    } else if (line.contains("response")) {
      r.prompt = prompt_of(line, t);
      r.response = response_after_prompt(line, "response", t);
    } else {
      RUDDER_CHECK(line.contains("completion") || line.contains("text") || is_alpaca(line) ||
                       conversation_key(line) != nullptr,
                   "missing 'response' (or 'chosen' and 'rejected', or a supervised layout: "
                   "'completion', 'messages', 'instruction' and 'output', or 'text')");
      SftExample ex = sft_example(line, t);
      r.prompt = std::move(ex.prompt);
      r.response = std::move(ex.completion);
    }
    each(as_in_file, std::move(r));
  });
}

std::vector<RankedList> load_ranked_jsonl(const std::string& path, const ChatTemplate& t,
                                          bool skip_bad, LoadReport* report,
                                          const FieldNames& fields) {
  std::vector<RankedList> out;
  for_each_line(path, skip_bad, report, fields, [&](const json& line) {
    RankedList l;
    l.category = category_of(line);
    RUDDER_CHECK(line.contains("prompt") && line.contains("responses") && line.contains("ranks"),
                 "missing 'prompt', 'responses' or 'ranks'");
    l.prompt = prompt_of(line, t);
    try {
      l.responses = line.at("responses").get<std::vector<std::string>>();
      l.ranks = line.at("ranks").get<std::vector<int64_t>>();
    } catch (const json::exception&) {
      throw core::InvalidArgument("'responses' must be a list of strings, 'ranks' of integers");
    }
    RUDDER_CHECK(l.responses.size() >= 2, "a ranked list needs at least 2 responses, got ",
                 l.responses.size());
    RUDDER_CHECK(l.ranks.size() == l.responses.size(), l.responses.size(), " responses but ",
                 l.ranks.size(), " ranks");
    RUDDER_CHECK(
        std::adjacent_find(l.ranks.begin(), l.ranks.end(), std::not_equal_to<>()) != l.ranks.end(),
        "every response has the same rank: no pair to learn from");
    out.push_back(std::move(l));
  });
  return out;
}

std::vector<LabelledText> load_labelled_jsonl(const std::string& path, bool skip_bad,
                                              LoadReport* report, const FieldNames& fields) {
  std::vector<LabelledText> out;
  for_each_line(path, skip_bad, report, fields, [&](const json& line) {
    LabelledText l;
    l.category = category_of(line);
    l.text = string_field(line, "text");
    if (line.contains("prompt")) l.prompt = string_field(line, "prompt");
    RUDDER_CHECK(line.contains("label"), "missing 'label'");
    const json& label = line.at("label");
    if (label.is_boolean()) {
      l.desired = label.get<bool>();
    } else {
      RUDDER_CHECK(
          label.is_number_integer() && (label.get<int64_t>() == 0 || label.get<int64_t>() == 1),
          "'label' must be 0, 1, false or true (1: the desired class), got ", label.dump());
      l.desired = label.get<int64_t>() == 1;
    }
    RUDDER_CHECK(!(l.prompt + l.text).empty(), "'text' is empty");
    out.push_back(std::move(l));
  });
  return out;
}

std::vector<PreferencePair> pairs_of(const RankedList& list) {
  std::vector<PreferencePair> out;
  for (size_t i = 0; i < list.responses.size(); ++i) {
    for (size_t j = 0; j < list.responses.size(); ++j) {
      if (list.ranks[i] < list.ranks[j])
        out.push_back({list.prompt, list.responses[i], list.responses[j], 0.0, list.category});
    }
  }
  return out;
}

std::vector<PromptExample> load_prompts_jsonl(const std::string& path, const ChatTemplate& t,
                                              bool skip_bad, LoadReport* report,
                                              const FieldNames& fields) {
  std::vector<PromptExample> out;
  for_each_line(path, skip_bad, report, fields, [&](const json& line) {
    PromptExample p;
    p.category = category_of(line);
    p.prompt = prompt_text(line, t);
    if (line.contains("reference")) p.reference = string_field(line, "reference");
    out.push_back(std::move(p));
  });
  return out;
}

void for_each_prompt_record(const std::string& path, const ChatTemplate& t,
                            const std::function<void(const json&, std::string)>& each) {
  detail::RecordOptions options;
  options.fields_apply = false;
  detail::for_each_record(path, options, nullptr,
                          [&](const json& line, const json&) { each(line, prompt_text(line, t)); });
}

std::vector<PromptSamples> load_prompt_samples_jsonl(const std::string& path, const ChatTemplate& t,
                                                     bool skip_bad, LoadReport* report) {
  std::vector<PromptSamples> out;
  detail::RecordOptions options;
  options.skip_bad = skip_bad;
  options.fields_apply = false;
  detail::for_each_record(path, options, report, [&](const json& line, const json&) {
    PromptSamples s;
    s.prompt = prompt_text(line, t);
    if (line.contains("responses")) {
      const json& responses = line.at("responses");
      RUDDER_CHECK(responses.is_array(), "'responses' must be a list of strings");
      for (const json& r : responses) {
        RUDDER_CHECK(r.is_string(), "'responses' must be a list of strings");
        s.responses.push_back(r.get<std::string>());
      }
    } else {
      RUDDER_CHECK(line.contains("samples"),
                   "missing 'responses' (or 'samples', as `rudder generate` writes them)");
      const json& samples = line.at("samples");
      RUDDER_CHECK(samples.is_array(), "'samples' must be a list of {\"text\": ...} objects");
      for (const json& sample : samples) {
        RUDDER_CHECK(sample.is_object() && sample.contains("text") && sample.at("text").is_string(),
                     "'samples' must be a list of {\"text\": ...} objects");
        s.responses.push_back(sample.at("text").get<std::string>());
      }
    }
    RUDDER_CHECK(!s.responses.empty(), "no responses");
    out.push_back(std::move(s));
  });
  return out;
}

}  // namespace rudder::data
