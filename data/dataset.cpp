#include "data/dataset.h"

#include <algorithm>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "data/chat.h"
#include "data/chat_json.h"

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

// Whether `line` is in Alpaca's layout (LLaMA-Factory's): "instruction", optional "input" and
// "system"; "output" the response.
bool is_alpaca(const json& line) {
  return line.contains("instruction") && !line.contains("prompt") && !conversation_key(line);
}

// An Alpaca line's prompt: its instruction, then its input (where not empty) on a new line, as
// one user turn after its system prompt (where given), with the generation prompt.
std::string alpaca_prompt(const json& line, const ChatTemplate& t) {
  std::string user = string_field(line, "instruction");
  const std::string input = line.contains("input") ? string_field(line, "input") : "";
  if (!input.empty()) user += "\n" + input;
  std::vector<ChatMessage> messages;
  if (line.contains("system")) messages.push_back({"system", string_field(line, "system")});
  messages.push_back({"user", user});
  return format_chat(messages, t, true);
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

// `record` with each field the file names otherwise under Rudder's name (replacing a field of
// that name, which the file means as something else).
json renamed(json record, const FieldNames& fields) {
  json out = record;
  for (const auto& [ours, theirs] : fields) {
    if (ours == theirs) continue;
    out.erase(ours);
    out.erase(theirs);
  }
  for (const auto& [ours, theirs] : fields) {
    if (ours != theirs && record.contains(theirs)) out[ours] = record.at(theirs);
  }
  return out;
}

// One record after another as the loaders read them, renamed by data.fields; a bad record is
// thrown or counted (data.on_bad_line) under a message naming where it is.
class RecordReader {
 public:
  using Parse = std::function<void(const json&)>;

  RecordReader(FieldNames fields, bool skip_bad, LoadReport& report, Parse parse)
      : fields_(std::move(fields)),
        skip_bad_(skip_bad),
        report_(report),
        parse_(std::move(parse)),
        field_seen_(fields_.size(), false) {
    for (const auto& [ours, theirs] : fields_) {
      RUDDER_CHECK(!theirs.empty(), "data.fields.", ours, " is empty: name the file's field");
      renames_ += str(renames_.empty() ? "" : ", ", "'", theirs, "' as '", ours, "'");
    }
    report_ = LoadReport{};
  }

  // One record; `where` names it in errors ("path:LINE" or "path: element N").
  void read(const std::function<json()>& record, const std::string& where) {
    ++report_.lines;
    try {
      parse_(fielded(parsed(record)));
    } catch (const core::InvalidArgument& e) {
      const std::string message = str(where, ": ", e.what(), note(e.what()));
      if (!skip_bad_) throw core::InvalidArgument(message);
      ++report_.skipped;
      if (report_.first_errors.size() < 10) report_.first_errors.push_back(message);
    }
  }

  // After the last record of `path`: a name no record has is a misspelt name, not a field every
  // record lacks.
  void finish(const std::string& path) const {
    for (size_t i = 0; i < fields_.size(); ++i) {
      RUDDER_CHECK(report_.lines == 0 || field_seen_[i], "data.fields.", fields_[i].first,
                   " names '", fields_[i].second, "', which no record of ", path, " has");
    }
    if (report_.skipped > 0) {
      RUDDER_LOG(kWarn) << path << ": skipped " << report_.skipped << " of " << report_.lines
                        << " records; first: " << report_.first_errors[0];
    }
  }

 private:
  static json parsed(const std::function<json()>& record) {
    json line;
    try {
      line = record();
    } catch (const json::exception& e) {
      throw core::InvalidArgument(str("not valid JSON: ", e.what()));
    }
    RUDDER_CHECK(line.is_object(), "expected a JSON object");
    return line;
  }

  // `line` under Rudder's field names.
  json fielded(json line) {
    for (size_t i = 0; i < fields_.size(); ++i)
      field_seen_[i] = field_seen_[i] || line.contains(fields_[i].second);
    return fields_.empty() ? line : renamed(std::move(line), fields_);
  }

  // What an error message adds: how the record's fields were read, or how else they could be.
  std::string note(const std::string& what) const {
    if (!renames_.empty()) return " (data.fields reads " + renames_ + ")";
    if (what.rfind("missing '", 0) == 0)
      return " (a file that names its fields otherwise is read with data.fields)";
    return "";
  }

  FieldNames fields_;
  bool skip_bad_;
  LoadReport& report_;  // the caller's, which outlives the reader
  Parse parse_;
  std::string renames_;           // for error messages
  std::vector<bool> field_seen_;  // in some record of the file
};

// Calls reader.read for each record of `in` (the file `path`): each non-empty line's JSON
// (JSONL), or each element of a file that is one JSON array (as `Dataset.to_json(lines=False)`
// and many published data.json files write it). A UTF-8 byte order mark at the start is skipped.
void read_records(std::istream& in, const std::string& path, RecordReader& reader) {
  static const std::string kByteOrderMark = "\xEF\xBB\xBF";
  std::string head(kByteOrderMark.size(), '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  const auto start = static_cast<std::streamoff>(head == kByteOrderMark ? head.size() : 0);
  in.clear();
  in.seekg(start);
  in >> std::ws;
  if (in.peek() == '[') {
    json records;
    try {
      records = json::parse(in);
    } catch (const json::exception& e) {
      throw core::InvalidArgument(
          str(path, ": not a valid JSON array (a file that begins with '[' ",
              "is read as one array; JSONL lines are objects): ", e.what()));
    }
    for (size_t i = 0; i < records.size(); ++i)
      reader.read([&] { return records[i]; }, str(path, ": element ", i + 1));
    return;
  }
  in.clear();  // `ws` may have met the end of an empty file
  in.seekg(start);
  std::string text;
  size_t line_number = 0;
  while (std::getline(in, text)) {
    ++line_number;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") == std::string::npos) continue;
    reader.read([&] { return json::parse(text); }, str(path, ":", line_number));
  }
}

// Calls `parse` on each record of `path` (read_records), as RecordReader reads it.
void for_each_line(const std::string& path, bool skip_bad, LoadReport* report,
                   const FieldNames& fields, const RecordReader::Parse& parse) {
  LoadReport local;
  RecordReader reader(fields, skip_bad, report != nullptr ? *report : local, parse);
  std::ifstream in(path, std::ios::binary);
  RUDDER_CHECK_T(core::NotFound, in.good(), path, ": cannot open");
  read_records(in, path, reader);
  reader.finish(path);
}

// HH-RLHF: the prompt is the shared prefix of both dialogues, up to the last "Assistant:".
std::string shared_prompt(const std::string& a, const std::string& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  const std::string common = a.substr(0, n);
  const size_t marker = common.rfind("Assistant:");
  if (marker == std::string::npos) return common;
  return common.substr(0, marker + std::string("Assistant:").size());
}

}  // namespace

std::vector<SftExample> load_sft_jsonl(const std::string& path, const ChatTemplate& t,
                                       bool skip_bad, LoadReport* report,
                                       const FieldNames& fields) {
  std::vector<SftExample> out;
  for_each_line(path, skip_bad, report, fields, [&](const json& line) {
    SftExample ex;
    ex.category = category_of(line);
    if (const char* key = conversation_key(line)) {
      std::tie(ex.prompt, ex.completion) =
          split_conversation(messages_of(line.at(key), key), key, t, &ex.assistant_turns);
    } else if (line.contains("completion")) {
      ex.prompt = prompt_of(line, t);
      if (line.at("completion").is_array()) {
        RUDDER_CHECK(has_prompt_messages(line),
                     "'completion' is a list of messages, so 'prompt' must be one too");
        ex.completion = completion_of(line.at("completion"), "completion", t);
      } else {
        ex.completion = string_field(line, "completion");
      }
    } else if (is_alpaca(line)) {
      ex.prompt = alpaca_prompt(line, t);
      ex.completion = string_field(line, "output") + t.assistant_suffix();
    } else {
      RUDDER_CHECK(line.contains("text") && !line.contains("prompt"),
                   "missing 'completion' (or 'messages', or 'text' alone)");
      ex.completion = string_field(line, "text");  // plain language modelling: no prompt
    }
    RUDDER_CHECK(!ex.completion.empty(), "empty completion");
    out.push_back(std::move(ex));
  });
  return out;
}

std::vector<PreferencePair> load_preference_jsonl(const std::string& path, const ChatTemplate& t,
                                                  bool skip_bad, LoadReport* report,
                                                  const FieldNames& fields) {
  std::vector<PreferencePair> out;
  for_each_line(path, skip_bad, report, fields, [&](const json& line) {
    PreferencePair p;
    p.category = category_of(line);
    RUDDER_CHECK(line.contains("chosen") && line.contains("rejected"),
                 "missing 'chosen' or 'rejected'");
    const json& chosen = line.at("chosen");
    const json& rejected = line.at("rejected");
    if (line.contains("conversations") && !line.contains("prompt")) {
      // ShareGPT's preference layout (LLaMA-Factory's): the conversation so far, then each
      // response as one assistant message or as a string.
      p.prompt = format_chat(messages_of(line.at("conversations"), "conversations"), t, true);
      p.chosen = reply_of(chosen, "chosen", t);
      p.rejected = reply_of(rejected, "rejected", t);
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
    out.push_back(std::move(p));
  });
  return out;
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
    if (const char* key = conversation_key(line))
      p.prompt = format_chat(messages_of(line.at(key), key), t, true);
    else if (is_alpaca(line))
      p.prompt = alpaca_prompt(line, t);
    else
      p.prompt = prompt_of(line, t);
    if (line.contains("reference")) p.reference = string_field(line, "reference");
    out.push_back(std::move(p));
  });
  return out;
}

}  // namespace rudder::data
