#include "rewards/score_jsonl.h"

#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tests/support/test_support.h"

namespace rudder::rewards {
namespace {

using nlohmann::json;

// reward = length of the response; counts calls.
class LengthModel : public RewardModel {
 public:
  std::vector<double> score(const std::vector<std::string>& prompts,
                            const std::vector<std::string>& responses) override {
    ++calls;
    std::vector<double> out;
    for (const auto& r : responses) out.push_back(static_cast<double>(r.size()));
    return out;
  }
  std::string version() const override { return "length"; }
  int calls = 0;
};

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
  std::istringstream lines(testing::read_file(out));
  std::string text;
  std::vector<json> rows;
  while (std::getline(lines, text)) rows.push_back(json::parse(text));
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
               "in.jsonl:2: missing \"response\"");
  expect_error("{\"prompt\": \"p\", \"chosen\": \"a\"}\n", "in.jsonl:1: missing \"rejected\"");
  expect_error("not json\n", "in.jsonl:1: malformed JSON");
  expect_error("{\"prompt\": 3, \"response\": \"a\"}\n", "\"prompt\" must be a string");
  EXPECT_THROW(score_jsonl(model, dir.path() + "/missing.jsonl", out), core::NotFound);
}

}  // namespace
}  // namespace rudder::rewards
