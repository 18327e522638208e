#include "rewards/score_jsonl.h"

#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace rudder::rewards {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// One record: as the file has it, and the pairs the model scores.
struct Line {
  json object;
  data::ScoringRecord record;
};

// A failure of the model while records are read: carried past the reader, which would take an
// InvalidArgument for the bad record that was read last.
struct ScoringFailed {
  std::exception_ptr error;
};

// Scores `lines` in one call to the model and writes them to `out`.
void score_chunk(RewardModel& model, std::vector<Line>* lines, std::ostream& out) {
  std::vector<std::string> prompts, responses;
  for (const auto& l : *lines) {
    prompts.push_back(l.record.prompt);
    responses.push_back(l.record.response);
    if (l.record.preference) {
      prompts.push_back(l.record.prompt);
      responses.push_back(l.record.rejected);
    }
  }
  const std::vector<double> rewards = model.score(prompts, responses);
  RUDDER_ASSERT(rewards.size() == prompts.size(), "the model returned ", rewards.size(),
                " rewards for ", prompts.size(), " pairs");
  size_t k = 0;
  for (auto& l : *lines) {
    if (l.record.preference) {
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
  const int64_t total = data::count_records(in_path);  // throws NotFound for a missing file
  const std::string tmp = out_path + ".tmp";
  std::ofstream out(tmp, std::ios::trunc);
  RUDDER_CHECK(out.good(), "cannot write '", tmp, "'");
  ScoreJsonlResult result;
  try {
    std::vector<Line> chunk;
    size_t chunk_pairs = 0;
    auto flush = [&] {
      try {
        result.pairs += static_cast<int64_t>(chunk_pairs);
        if (!chunk.empty()) score_chunk(model, &chunk, out);
        chunk_pairs = 0;
        // Progress counts every record read, the skipped too, against the file's count.
        if (options.progress) options.progress(result.lines + result.skipped, total);
      } catch (...) {
        throw ScoringFailed{std::current_exception()};
      }
    };
    data::LoadReport report;
    try {
      data::for_each_scoring_record(in_path, options.chat_template, options.skip_bad, &report,
                                    options.fields,
                                    [&](const json& object, data::ScoringRecord record) {
                                      result.skipped = static_cast<int64_t>(report.skipped);
                                      chunk_pairs += record.preference ? 2 : 1;
                                      chunk.push_back({object, std::move(record)});
                                      ++result.lines;
                                      if (chunk_pairs >= options.batch_size) flush();
                                    });
      result.skipped = static_cast<int64_t>(report.skipped);
      flush();
    } catch (const ScoringFailed& failed) {
      std::rethrow_exception(failed.error);
    }
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
