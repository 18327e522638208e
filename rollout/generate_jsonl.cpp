#include "rollout/generate_jsonl.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/dataset.h"
#include "data/tokenizer.h"

namespace rudder::rollout {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct PromptLine {
  json object;                  // the input line, echoed
  std::vector<int64_t> prompt;  // its token ids
};

// Every prompt of `path`, read and tokenized before any is generated from.
std::vector<PromptLine> read_prompts(const std::string& path, const data::Tokenizer& tokenizer,
                                     const GenerateJsonlOptions& options) {
  std::vector<PromptLine> out;
  data::for_each_prompt_record(
      path, options.chat_template, [&](const json& object, const std::string& prompt) {
        RUDDER_CHECK(!object.contains("samples"), "\"samples\" is the output's key");
        PromptLine line;
        line.object = object;
        if (options.add_bos && tokenizer.bos_id()) line.prompt.push_back(*tokenizer.bos_id());
        const auto ids = tokenizer.encode(prompt);
        line.prompt.insert(line.prompt.end(), ids.begin(), ids.end());
        RUDDER_CHECK(!line.prompt.empty(), "the prompt is empty");
        out.push_back(std::move(line));
      });
  return out;
}

json sample_json(const Sample& s, const data::Tokenizer& tokenizer) {
  std::string text = s.text;
  if (text.empty() && !s.tokens.empty() && s.finish_reason != FinishReason::kStop) {
    std::vector<int64_t> ids = s.tokens;
    if (s.finish_reason == FinishReason::kEos) ids.pop_back();
    text = tokenizer.decode(ids);
  }
  return {{"text", text},
          {"token_ids", s.tokens},
          {"logprobs", s.logprobs},
          {"policy_logprobs", s.policy_logprobs},
          {"finish_reason", finish_reason_name(s.finish_reason)}};
}

}  // namespace

int64_t generate_jsonl(RolloutEngine& engine, const data::Tokenizer& tokenizer,
                       const std::string& in_path, const std::string& out_path,
                       const GenerateJsonlOptions& options) {
  RUDDER_CHECK(options.batch_size > 0, "generate_jsonl: batch_size must be positive");
  validate_sampling(options.sampling, "generate");
  const std::vector<PromptLine> lines = read_prompts(in_path, tokenizer, options);
  const std::string tmp = out_path + ".tmp";
  std::ofstream out(tmp, std::ios::trunc);
  RUDDER_CHECK(out.good(), "cannot write '", tmp, "'");
  try {
    for (size_t first = 0; first < lines.size(); first += options.batch_size) {
      const size_t last = std::min(lines.size(), first + options.batch_size);
      std::vector<GenerateInput> requests;
      for (size_t i = first; i < last; ++i) {
        GenerateInput in;
        in.prompt = lines[i].prompt;
        in.sampling = options.sampling;
        in.n = options.n;
        requests.push_back(std::move(in));
      }
      const std::vector<GenerateOutput> results = engine.generate(requests);
      for (size_t i = first; i < last; ++i) {
        json line = lines[i].object;
        line["samples"] = json::array();
        for (const Sample& s : results[i - first].samples) {
          line["samples"].push_back(sample_json(s, tokenizer));
        }
        line["policy_version"] = results[i - first].policy_version;
        // Text that is not UTF-8 (a byte-level model may stop inside a character) is written
        // with U+FFFD in its place; token_ids keep the exact output.
        out << line.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
      }
      if (options.progress) options.progress(static_cast<int64_t>(last), lines.size());
    }
    out.close();
    RUDDER_CHECK(!out.fail(), "writing '", tmp, "' failed");
    fs::rename(tmp, out_path);
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
  return static_cast<int64_t>(lines.size());
}

}  // namespace rudder::rollout
