#include "rewards/calibrated_reward_model.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "proto/rudder.pb.h"
#include "rewards/rule_rewards.h"
#include "tests/support/test_support.h"

namespace rudder::rewards {
namespace {

// Scores a response by its length, counting calls.
class LengthReward : public RewardModel {
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

TEST(CalibratedRewardModel, PositionAmongReferenceRewardsCachedPerPrompt) {
  auto inner = std::make_shared<LengthReward>();
  // Reference rewards 1, 5, 5, 9 (ALGORITHMS.md T5.1 scaled): ties count one half.
  CalibratedRewardModel calibrated(inner,
                                   {{"p", {"a", "abcde", "vwxyz", "abcdefghi"}}, {"q", {"ab"}}});
  EXPECT_EQ(calibrated.score({"p", "p", "p", "q"}, {"12345", "1234567890", "", "ab"}),
            (std::vector<double>{0.5, 1.0, 0.0, 0.5}));
  EXPECT_EQ(calibrated.cached_prompts(), 2u);
  const int calls = inner->calls;
  calibrated.score({"p"}, {"xyz"});    // 1 < 3 < 5: 1/4
  EXPECT_EQ(inner->calls, calls + 1);  // the reference rewards came from the cache
  EXPECT_DOUBLE_EQ(calibrated.score({"p"}, {"xyz"})[0], 0.25);
  EXPECT_EQ(calibrated.version(), "calibrated(length)");
  EXPECT_THROW(calibrated.score({"unknown"}, {"a"}), core::InvalidArgument);
  EXPECT_THROW(CalibratedRewardModel(inner, {}), core::InvalidArgument);
  EXPECT_THROW(CalibratedRewardModel(inner, {{"p", {}}}), core::InvalidArgument);
}

TEST(CalibratedRewardModel, LoadsReferenceSamplesFromJsonl) {
  testing::TempDir dir;
  const std::string path = dir.write(
      "refs.jsonl",
      "{\"prompt\": \"p\", \"responses\": [\"a\", \"b\"]}\n\n{\"prompt\": \"p\", \"responses\": "
      "[\"c\"]}\n");
  const auto refs = load_reference_samples(path, ChatTemplate());
  EXPECT_EQ(refs.at("p"), (std::vector<std::string>{"a", "b", "c"}));
  const std::string bad = dir.write("bad.jsonl", "{\"prompt\": \"p\", \"responses\": []}\n");
  try {
    load_reference_samples(bad, ChatTemplate());
    FAIL() << "an empty list of responses loaded";
  } catch (const core::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_reference_samples(dir.path() + "/missing.jsonl", ChatTemplate()),
               core::NotFound);
}

// `rudder generate`'s output is a reference file as it stands: its samples' texts are the
// responses, a prompt given as messages is the formatted prompt the scorer sees; a JSON array
// of records reads too.
TEST(CalibratedRewardModel, LoadsWhatRudderGenerateWrites) {
  testing::TempDir dir;
  ChatTemplate t;
  t.set_user_prefix("User: ");
  t.set_user_suffix("\n");
  t.set_assistant_prefix("Assistant: ");
  const std::string generated = dir.write(
      "generated.jsonl",
      R"({"prompt": "2+2=", "id": 1, "samples": [{"text": "4", "token_ids": [7], "finish_reason": "stop"}, {"text": "5", "token_ids": [8], "finish_reason": "stop"}], "policy_version": 0})"
      "\n"
      R"({"messages": [{"role": "user", "content": "Hi"}], "samples": [{"text": "Hello"}]})"
      "\n");
  const auto refs = load_reference_samples(generated, t);
  EXPECT_EQ(refs.at("2+2="), (std::vector<std::string>{"4", "5"}));
  EXPECT_EQ(refs.at("User: Hi\nAssistant: "), (std::vector<std::string>{"Hello"}));
  const auto array = load_reference_samples(
      dir.write("refs.json",
                R"([{"prompt": "p", "responses": ["a"]}, {"prompt": "q", "responses": ["b"]}])"),
      t);
  EXPECT_EQ(array.size(), 2u);
  for (const std::string bad : {R"({"prompt": "p", "samples": [{"tokens": [1]}]})",
                                R"({"prompt": "p", "responses": [1]})", R"({"prompt": "p"})"}) {
    const std::string what = testing::error_message<core::InvalidArgument>(
        [&] { load_reference_samples(dir.write("bad.jsonl", bad + "\n"), t); });
    EXPECT_NE(what.find("bad.jsonl:1: "), std::string::npos) << bad << ": " << what;
  }
  EXPECT_THROW(load_reference_samples(dir.write("empty.jsonl", "\n"), t), core::InvalidArgument);
}

}  // namespace
}  // namespace rudder::rewards
