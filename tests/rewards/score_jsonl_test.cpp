#include "rewards/score_jsonl.h"

#include <filesystem>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tests/support/test_support.h"

namespace rudder::rewards {
namespace {

using nlohmann::json;

// reward = length of the response; counts calls and keeps what it scored.
class LengthModel : public RewardModel {
 public:
  std::vector<double> score(const std::vector<std::string>& prompts,
                            const std::vector<std::string>& responses) override {
    ++calls;
    if (fail) throw core::InvalidArgument("the model refuses");
    std::vector<double> out;
    for (size_t i = 0; i < responses.size(); ++i) {
      seen.emplace_back(prompts[i], responses[i]);
      out.push_back(static_cast<double>(responses[i].size()));
    }
    return out;
  }
  std::string version() const override { return "length"; }
  int calls = 0;
  bool fail = false;
  std::vector<std::pair<std::string, std::string>> seen;
};

std::vector<json> read_rows(const std::string& path) {
  std::istringstream lines(testing::read_file(path));
  std::string text;
  std::vector<json> rows;
  while (std::getline(lines, text)) rows.push_back(json::parse(text));
  return rows;
}

TEST(ScoreJsonl, ScoresPairsAndPreferencePairsInOrder) {
  testing::TempDir dir;
  const std::string in = dir.write("in.jsonl", R"({"prompt": "p", "response": "abc", "id": 7}

{"prompt": "q", "chosen": "good!", "rejected": "no"}
{"prompt": "r", "response": ""}
)");
  const std::string out = dir.path() + "/out.jsonl";
  LengthModel model;
  std::vector<std::pair<int64_t, int64_t>> progress;
  ScoreJsonlOptions o;
  o.batch_size = 2;
  o.progress = [&](int64_t done, int64_t total) { progress.emplace_back(done, total); };
  const ScoreJsonlResult result = score_jsonl(model, in, out, o);
  EXPECT_EQ(result.lines, 3);
  EXPECT_EQ(result.pairs, 4);
  EXPECT_EQ(model.calls, 2);
  EXPECT_EQ(progress.back(), std::make_pair(int64_t{3}, int64_t{3}));
  const std::vector<json> rows = read_rows(out);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0]["reward"], 3.0);
  EXPECT_EQ(rows[0]["id"], 7);  // the input's other fields are kept
  EXPECT_EQ(rows[1]["chosen_reward"], 5.0);
  EXPECT_EQ(rows[1]["rejected_reward"], 2.0);
  EXPECT_EQ(rows[1]["margin"], 3.0);
  EXPECT_EQ(rows[2]["reward"], 0.0);
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
}

TEST(ScoreJsonl, ABadLineIsNamedAndNoOutputIsLeft) {
  testing::TempDir dir;
  LengthModel model;
  const std::string out = dir.path() + "/out.jsonl";
  const auto expect_error = [&](const std::string& content, const std::string& words) {
    const std::string in = dir.write("in.jsonl", content);
    try {
      score_jsonl(model, in, out);
      FAIL() << content;
    } catch (const core::InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(out));
    EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
  };
  expect_error("{\"prompt\": \"p\", \"response\": \"a\"}\n{\"prompt\": \"p\"}\n",
               "in.jsonl:2: missing 'response'");
  expect_error("{\"prompt\": \"p\", \"chosen\": \"a\"}\n", "in.jsonl:1: missing 'rejected'");
  expect_error("not json\n", "in.jsonl:1: not valid JSON");
  expect_error("{\"prompt\": 3, \"response\": \"a\"}\n", "'prompt' must be a string");
  expect_error("{\"prompt\": \"p\", \"response\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n",
               "in.jsonl:1: has both 'response' and 'chosen'/'rejected'");
  expect_error("[{\"prompt\": \"p\", \"response\": \"a\"}, {\"prompt\": \"p\"}]",
               "in.jsonl: element 2: missing 'response'");
  EXPECT_THROW(score_jsonl(model, dir.path() + "/missing.jsonl", out), core::NotFound);
}

// Preference records in every layout training reads are scored as training reads them: the
// model sees the prompts and responses the preference loader makes of the same file.
TEST(ScoreJsonl, PreferenceLayoutsReadAsTrainingReadsThem) {
  testing::TempDir dir;
  const std::string in = dir.write(
      "prefs.jsonl",
      // UltraFeedback: whole conversations.
      R"({"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}], "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go."}]})"
      "\n"
      // TRL's conversational layout with the prompt apart.
      R"({"prompt": [{"role": "user", "content": "2+2?"}], "chosen": [{"role": "assistant", "content": "4"}], "rejected": [{"role": "assistant", "content": "5"}]})"
      "\n"
      // HH-RLHF: the prompt is the shared prefix.
      R"({"chosen": "\n\nHuman: Hey\n\nAssistant: Hi there", "rejected": "\n\nHuman: Hey\n\nAssistant: No"})"
      "\n"
      // ShareGPT's preference layout (LLaMA-Factory's).
      R"({"conversations": [{"from": "human", "value": "Name a colour"}], "chosen": {"from": "gpt", "value": "Blue"}, "rejected": {"from": "gpt", "value": "Seven"}})"
      "\n");
  const std::string out = dir.path() + "/out.jsonl";
  LengthModel model;
  ScoreJsonlOptions o;
  o.chat_template = testing::chat_template();
  const ScoreJsonlResult result = score_jsonl(model, in, out, o);
  EXPECT_EQ(result.lines, 4);
  EXPECT_EQ(result.pairs, 8);
  const auto pairs = data::load_preference_jsonl(in, testing::chat_template(), false);
  ASSERT_EQ(pairs.size(), 4u);
  ASSERT_EQ(model.seen.size(), 8u);
  for (size_t i = 0; i < pairs.size(); ++i) {
    EXPECT_EQ(model.seen[2 * i], std::make_pair(pairs[i].prompt, pairs[i].chosen)) << i;
    EXPECT_EQ(model.seen[2 * i + 1], std::make_pair(pairs[i].prompt, pairs[i].rejected)) << i;
  }
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(model.seen[0], P("User: Hi\nAssistant: ", "Hello!\n"));
  EXPECT_EQ(model.seen[3], P("User: 2+2?\nAssistant: ", "5\n"));
  EXPECT_EQ(model.seen[4], P("\n\nHuman: Hey\n\nAssistant:", " Hi there"));
  EXPECT_EQ(model.seen[6], P("User: Name a colour\nAssistant: ", "Blue\n"));
  const std::vector<json> rows = read_rows(out);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0]["chosen_reward"], 7.0);  // "Hello!\n"
  EXPECT_EQ(rows[0]["rejected_reward"], 4.0);
  EXPECT_TRUE(rows[0]["chosen"].is_array());  // the record as the file has it
  EXPECT_EQ(rows[2]["margin"], 6.0);          // " Hi there" against " No"
}

// One response per record in the supervised layouts, from a file that is one JSON array; and
// a file's own field names (data.fields), kept in the output.
TEST(ScoreJsonl, SupervisedLayoutsArraysAndRenamedFields) {
  testing::TempDir dir;
  const std::string in = dir.write(
      "sft.json",
      R"([{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}]},
          {"instruction": "Add", "input": "2 and 2", "output": "4"},
          {"prompt": [{"role": "user", "content": "Q"}], "response": [{"role": "assistant", "content": "A"}]}])");
  const std::string out = dir.path() + "/out.jsonl";
  LengthModel model;
  std::vector<std::pair<int64_t, int64_t>> progress;
  ScoreJsonlOptions o;
  o.chat_template = testing::chat_template();
  o.progress = [&](int64_t done, int64_t total) { progress.emplace_back(done, total); };
  EXPECT_EQ(score_jsonl(model, in, out, o).lines, 3);
  EXPECT_EQ(progress.back(), std::make_pair(int64_t{3}, int64_t{-1}));  // an array: not counted
  using P = std::pair<std::string, std::string>;
  ASSERT_EQ(model.seen.size(), 3u);
  EXPECT_EQ(model.seen[0], P("User: Hi\nAssistant: ", "Hey\n"));
  EXPECT_EQ(model.seen[1], P("User: Add\n2 and 2\nAssistant: ", "4\n"));
  EXPECT_EQ(model.seen[2], P("User: Q\nAssistant: ", "A\n"));
  EXPECT_EQ(read_rows(out).size(), 3u);

  const std::string renamed = dir.write("qa.jsonl", R"({"question": "Why?", "answer": "Because"}
{"question": "How?", "answer": "So"}
)");
  model.seen.clear();
  o.fields = {{"prompt", "question"}, {"completion", "answer"}};
  EXPECT_EQ(score_jsonl(model, renamed, out, o).lines, 2);
  EXPECT_EQ(progress.back(), std::make_pair(int64_t{2}, int64_t{2}));
  ASSERT_EQ(model.seen.size(), 2u);
  EXPECT_EQ(model.seen[0], P("Why?", "Because"));
  const std::vector<json> rows = read_rows(out);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["question"], "Why?");  // not renamed in the output
  EXPECT_FALSE(rows[0].contains("prompt"));
  EXPECT_EQ(rows[0]["reward"], 7.0);
}

// data.on_bad_line: skip leaves bad records out and counts them; a failure of the model is its
// own error, never a bad record, and leaves no output.
TEST(ScoreJsonl, SkipsBadRecordsButNotTheModelsFailures) {
  testing::TempDir dir;
  const std::string in = dir.write("in.jsonl", R"({"prompt": "p", "response": "abc"}
{"prompt": "p"}
not json
{"prompt": "q", "chosen": "a", "rejected": "bb"}
)");
  const std::string out = dir.path() + "/out.jsonl";
  LengthModel model;
  ScoreJsonlOptions o;
  o.skip_bad = true;
  o.batch_size = 1;
  const ScoreJsonlResult result = score_jsonl(model, in, out, o);
  EXPECT_EQ(result.lines, 2);
  EXPECT_EQ(result.skipped, 2);
  const std::vector<json> rows = read_rows(out);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1]["margin"], -1.0);
  model.fail = true;
  std::filesystem::remove(out);
  try {
    score_jsonl(model, in, out, o);
    FAIL() << "the model's failure was lost";
  } catch (const core::InvalidArgument& e) {
    EXPECT_EQ(std::string(e.what()), "the model refuses");  // not "in.jsonl:1: ..."
  }
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
}

}  // namespace
}  // namespace rudder::rewards
