#include "rewards/score_jsonl.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace rudder::rewards {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// One parsed input line.
struct Line {
  json object;
  bool preference = false;  // chosen/rejected rather than response
};

std::string text_field(const json& object, const char* key, const std::string& where) {
  const auto it = object.find(key);
  RUDDER_CHECK(it != object.end(), where, ": missing \"", key, "\"");
  RUDDER_CHECK(it->is_string(), where, ": \"", key, "\" must be a string, got ", it->type_name());
  return it->get<std::string>();
}

Line parse_line(const std::string& text, const std::string& where) {
  Line line;
  try {
    line.object = json::parse(text);
  } catch (const json::exception& e) {
    throw core::InvalidArgument(core::str(where, ": malformed JSON: ", e.what()));
  }
  RUDDER_CHECK(line.object.is_object(), where, ": expected a JSON object");
  text_field(line.object, "prompt", where);
  line.preference = line.object.contains("chosen") || line.object.contains("rejected");
  if (line.preference) {
    RUDDER_CHECK(!line.object.contains("response"), where,
                 ": has both \"response\" and \"chosen\"/\"rejected\"; keep one form");
    text_field(line.object, "chosen", where);
    text_field(line.object, "rejected", where);
  } else {
    text_field(line.object, "response", where);
  }
  return line;
}

int64_t count_lines(const std::string& path) {
  std::ifstream in(path);
  int64_t n = 0;
  std::string text;
  while (std::getline(in, text)) {
    if (text.find_first_not_of(" \t\r") != std::string::npos) ++n;
  }
  return n;
}

// Scores `lines` in one call to the model and writes them to `out`.
void score_chunk(RewardModel& model, std::vector<Line>* lines, std::ostream& out) {
  std::vector<std::string> prompts, responses;
  for (const auto& l : *lines) {
    const std::string prompt = l.object["prompt"].get<std::string>();
    for (const char* key : l.preference ? std::vector<const char*>{"chosen", "rejected"}
                                        : std::vector<const char*>{"response"}) {
      prompts.push_back(prompt);
      responses.push_back(l.object[key].get<std::string>());
    }
  }
  const std::vector<double> rewards = model.score(prompts, responses);
  RUDDER_ASSERT(rewards.size() == prompts.size(), "the model returned ", rewards.size(),
                " rewards for ", prompts.size(), " pairs");
  size_t k = 0;
  for (auto& l : *lines) {
    if (l.preference) {
      l.object["chosen_reward"] = rewards[k];
      l.object["rejected_reward"] = rewards[k + 1];
      l.object["margin"] = rewards[k] - rewards[k + 1];
      k += 2;
    } else {
      l.object["reward"] = rewards[k++];
    }
    out << l.object.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  }
  lines->clear();
}

}  // namespace

ScoreJsonlResult score_jsonl(RewardModel& model, const std::string& in_path,
                             const std::string& out_path, const ScoreJsonlOptions& options) {
  RUDDER_CHECK(options.batch_size >= 1, "batch_size must be >= 1");
  std::ifstream in(in_path);
  RUDDER_CHECK_T(core::NotFound, in.good(), "cannot read '", in_path, "'");
  const int64_t total = count_lines(in_path);
  const std::string tmp = out_path + ".tmp";
  std::ofstream out(tmp, std::ios::trunc);
  RUDDER_CHECK(out.good(), "cannot write '", tmp, "'");
  ScoreJsonlResult result;
  try {
    std::vector<Line> chunk;
    size_t chunk_pairs = 0;
    std::string text;
    for (int64_t number = 1; std::getline(in, text); ++number) {
      if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
      chunk.push_back(parse_line(text, core::str(in_path, ":", number)));
      chunk_pairs += chunk.back().preference ? 2 : 1;
      ++result.lines;
      if (chunk_pairs >= options.batch_size) {
        result.pairs += static_cast<int64_t>(chunk_pairs);
        score_chunk(model, &chunk, out);
        chunk_pairs = 0;
        if (options.progress) options.progress(result.lines, total);
      }
    }
    result.pairs += static_cast<int64_t>(chunk_pairs);
    if (!chunk.empty()) score_chunk(model, &chunk, out);
    if (options.progress) options.progress(result.lines, total);
    out.close();
    RUDDER_CHECK(!out.fail(), "writing '", tmp, "' failed");
    fs::rename(tmp, out_path);
  } catch (...) {
    out.close();
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
  return result;
}

}  // namespace rudder::rewards
