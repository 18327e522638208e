#include "services/detail/score_batcher.h"

#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "core/error.h"
#include "tests/services/reward_fixtures.h"

namespace rudder::services::detail {
namespace {

using namespace std::chrono_literals;
using testing::FakeRewardModel;

ScoreTask task_of(const std::vector<std::string>& responses) {
  ScoreTask t;
  t.responses = responses;
  t.prompts.assign(responses.size(), "");
  for (const auto& r : responses) t.tokens.push_back(static_cast<int64_t>(r.size()));
  t.deadline = std::chrono::steady_clock::now() + 30s;
  return t;
}

void wait_for_depth(const ScoreBatcher& b, size_t depth) {
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (b.queue_depth() < depth && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(1ms);
  ASSERT_EQ(b.queue_depth(), depth);
}

void wait_for_waiting(const ScoreBatcher& b, size_t samples) {
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (b.samples_waiting_for_room() < samples && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(1ms);
  ASSERT_EQ(b.samples_waiting_for_room(), samples);
}

TEST(ScoreBatcher, QueuedRequestsShareBatchesUpToTheSizeLimit) {
  auto model = std::make_shared<FakeRewardModel>();
  BatcherOptions o;
  o.max_batch_size = 4;
  ScoreBatcher batcher(model, o);
  model->close();
  auto first = std::async(std::launch::async, [&] { return batcher.score(task_of({"a"})); });
  model->wait_entered();
  std::vector<std::future<ScoreOutcome>> rest;
  for (int i = 0; i < 3; ++i)  // 3 requests of 3 samples: batches 4, 4, 1
    rest.push_back(std::async(std::launch::async, [&] {
      return batcher.score(task_of({"bb", "ccc", "d"}));
    }));
  wait_for_depth(batcher, 9);
  model->open();
  EXPECT_EQ(first.get().details[0].reward, 1);
  for (auto& f : rest) {
    const ScoreOutcome out = f.get();
    ASSERT_EQ(out.status, 200) << out.error;
    ASSERT_EQ(out.details.size(), 3u);  // a request spanning two batches comes back whole
    EXPECT_EQ(out.details[0].reward, 2);
    EXPECT_EQ(out.details[1].reward, 3);
    EXPECT_EQ(out.details[2].reward, 1);
  }
  EXPECT_EQ(model->batch_sizes(), (std::vector<size_t>{1, 4, 4, 1}));
}

TEST(ScoreBatcher, TheTokenLimitCutsBatchesButALongSampleStillRuns) {
  auto model = std::make_shared<FakeRewardModel>();
  BatcherOptions o;
  o.max_batch_size = 100;
  o.max_batch_tokens = 10;
  ScoreBatcher batcher(model, o);
  model->close();
  auto first = std::async(std::launch::async, [&] { return batcher.score(task_of({"a"})); });
  model->wait_entered();
  auto next = std::async(std::launch::async, [&] {
    return batcher.score(task_of({"aaaa", "bbbb", "cccc", std::string(30, 'x'), "d"}));
  });
  wait_for_depth(batcher, 5);
  model->open();
  first.get();
  EXPECT_EQ(next.get().status, 200);
  EXPECT_EQ(model->batch_sizes(), (std::vector<size_t>{1, 2, 1, 1, 1}));
}

TEST(ScoreBatcher, AFailingRequestDoesNotFailTheOthersInItsBatch) {
  // A model that refuses one response, as a BPE tokenizer refuses invalid UTF-8.
  class Picky : public FakeRewardModel {
   public:
    std::vector<double> score(const std::vector<std::string>& p,
                              const std::vector<std::string>& r) override {
      for (const auto& s : r) RUDDER_CHECK(s != "bad", "cannot score 'bad'");
      return FakeRewardModel::score(p, r);
    }
  };
  auto model = std::make_shared<Picky>();
  BatcherOptions o;
  o.max_batch_size = 8;
  ScoreBatcher batcher(model, o);
  model->close();
  auto first = std::async(std::launch::async, [&] { return batcher.score(task_of({"a"})); });
  model->wait_entered();
  auto good = std::async(std::launch::async, [&] { return batcher.score(task_of({"ok", "yes"})); });
  auto bad = std::async(std::launch::async, [&] { return batcher.score(task_of({"x", "bad"})); });
  wait_for_depth(batcher, 4);
  model->open();
  first.get();
  EXPECT_EQ(good.get().status, 200);
  const ScoreOutcome failed = bad.get();
  EXPECT_EQ(failed.status, 400);
  EXPECT_NE(failed.error.find("cannot score 'bad'"), std::string::npos) << failed.error;
}

// The later part of a request already taken in part waits for room instead of being refused,
// and new requests do not take the room it waits for.
TEST(ScoreBatcher, ALaterPartWaitsForRoomAheadOfNewRequests) {
  auto model = std::make_shared<FakeRewardModel>();
  BatcherOptions o;
  o.max_batch_size = 1;
  o.max_queue = 2;
  ScoreBatcher batcher(model, o);
  model->close();
  auto first = std::async(std::launch::async, [&] { return batcher.score(task_of({"a"})); });
  model->wait_entered();
  auto queued = std::async(std::launch::async, [&] { return batcher.score(task_of({"bb", "c"})); });
  wait_for_depth(batcher, 2);
  // Full: a new request is refused at once, a later part waits.
  const ScoreOutcome refused = batcher.score(task_of({"d"}));
  EXPECT_EQ(refused.status, 429);
  auto later = std::async(std::launch::async, [&] {
    return batcher.score(task_of({"eee", "ffff"}), WhenFull::kWait);
  });
  wait_for_waiting(batcher, 2);
  EXPECT_EQ(batcher.queue_depth(), 2u);
  // One sample leaves the queue: room for one, but the waiting part is owed it.
  model->pass_one();
  EXPECT_EQ(first.get().status, 200);
  model->wait_entered();  // the worker holds "bb"; "c" is queued
  const ScoreOutcome behind = batcher.score(task_of({"g"}));
  EXPECT_EQ(behind.status, 429) << "a new request took the room a waiting part is owed";
  EXPECT_NE(behind.error.find("2 more waiting to enter"), std::string::npos) << behind.error;
  model->open();
  EXPECT_EQ(queued.get().status, 200);
  const ScoreOutcome out = later.get();
  ASSERT_EQ(out.status, 200) << out.error;
  ASSERT_EQ(out.details.size(), 2u);
  EXPECT_EQ(out.details[0].reward, 3);
  EXPECT_EQ(out.details[1].reward, 4);
  // A part that finds no room by its deadline is 503, and leaves no debt behind it.
  model->close();
  auto holder = std::async(std::launch::async, [&] { return batcher.score(task_of({"h"})); });
  model->wait_entered();
  auto filler = std::async(std::launch::async, [&] { return batcher.score(task_of({"i", "j"})); });
  wait_for_depth(batcher, 2);
  ScoreTask late = task_of({"k"});
  late.deadline = std::chrono::steady_clock::now() + 100ms;
  const ScoreOutcome expired = batcher.score(std::move(late), WhenFull::kWait);
  EXPECT_EQ(expired.status, 503);
  EXPECT_NE(expired.error.find("not queued within"), std::string::npos) << expired.error;
  model->open();
  EXPECT_EQ(holder.get().status, 200);
  EXPECT_EQ(filler.get().status, 200);
  EXPECT_EQ(batcher.samples_waiting_for_room(), 0u);
  EXPECT_EQ(batcher.score(task_of({"l", "m"})).status, 200);
}

TEST(ScoreBatcher, QueuedRequestsAre503AtShutdown) {
  auto model = std::make_shared<FakeRewardModel>();
  BatcherOptions o;
  o.max_queue = 1;
  auto batcher = std::make_unique<ScoreBatcher>(model, o);
  model->close();
  auto first = std::async(std::launch::async, [&] { return batcher->score(task_of({"a"})); });
  model->wait_entered();
  auto queued = std::async(std::launch::async, [&] { return batcher->score(task_of({"b"})); });
  wait_for_depth(*batcher, 1);
  // A later part waiting for room, when the batcher goes, is answered too.
  auto waiting = std::async(std::launch::async,
                            [&] { return batcher->score(task_of({"c"}), WhenFull::kWait); });
  wait_for_waiting(*batcher, 1);
  std::thread stopper([&] { batcher.reset(); });
  std::this_thread::sleep_for(50ms);
  model->open();
  stopper.join();
  EXPECT_EQ(first.get().status, 200);
  for (auto* f : {&queued, &waiting}) {
    const ScoreOutcome out = f->get();
    EXPECT_EQ(out.status, 503);
    EXPECT_NE(out.error.find("shutting down"), std::string::npos) << out.error;
  }
}

}  // namespace
}  // namespace rudder::services::detail
