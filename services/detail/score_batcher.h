// Dynamic batching for the reward server: HTTP threads hand requests to one worker thread that
// owns the model, through a bounded queue of samples and one future per request.
//
// Batches form from the front of the queue (first come, first served; a request's samples may
// span several batches) up to `max_batch_size` samples and `max_batch_tokens` tokens; the worker
// starts a batch when it is full or when its oldest sample has waited `max_queue_delay`.
// A request whose samples do not fit in the queue is refused at once (429), unless it is the
// later part of a request already taken in part (WhenFull::kWait): that waits for room, ahead of
// new requests, so the parts already scored are not thrown away. One not answered by its
// deadline is answered 503 and its samples are dropped unscored.
//
// Thread-safety: score() may be called from any number of threads; the model is only ever
// called from the worker thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "rewards/reward_model.h"

namespace rudder::services::detail {

/// Limits of a ScoreBatcher (see RewardServerConfig in the proto).
struct BatcherOptions {
  size_t max_batch_size = 32;
  int64_t max_batch_tokens = 8192;
  std::chrono::milliseconds max_queue_delay{5};
  size_t max_queue = 4096;
};

/// One request's samples, validated by the HTTP thread.
struct ScoreTask {
  std::vector<std::string> prompts;
  std::vector<std::string> responses;
  std::vector<int64_t> tokens;  // per sample, as the model counts them
  rewards::ScoreOptions options;
  std::chrono::steady_clock::time_point deadline;
};

/// What became of a ScoreTask: 200 and one detail per sample, or an error status and message.
struct ScoreOutcome {
  int status = 200;
  std::string error;
  std::vector<rewards::ScoreDetail> details;
};

struct PendingRequest;

/// What score() does with a task that does not fit in the queue.
enum class WhenFull {
  kRefuse,  // 429 at once
  kWait,    // wait for room until the task's deadline (503 then); room that frees goes to the
            // waiting tasks before new kRefuse ones (waiting tasks compete among themselves)
};

/// The queue and its worker thread.
class ScoreBatcher {
 public:
  /// Starts the worker; throws InvalidArgument for limits below 1.
  ScoreBatcher(std::shared_ptr<rewards::RewardModel> model, BatcherOptions options);
  /// Stops the worker; requests still queued, or waiting for room, are answered 503.
  ~ScoreBatcher();
  ScoreBatcher(const ScoreBatcher&) = delete;
  ScoreBatcher& operator=(const ScoreBatcher&) = delete;

  /// Queues `task` and blocks until it is scored, refused (429: with kRefuse when the queue is
  /// full, or always for more samples than max_queue) or past its deadline (503). Never throws.
  /// Calls queued or waiting for room when the batcher is destroyed are answered 503; no call
  /// may begin once its destruction has begun.
  ScoreOutcome score(ScoreTask task, WhenFull when_full = WhenFull::kRefuse);

  /// Samples waiting in the queue.
  size_t queue_depth() const;
  /// Samples of kWait tasks waiting for room in the queue.
  size_t samples_waiting_for_room() const;

  /// The model the worker owns (for its thread-safe queries).
  const rewards::RewardModel& model() const { return *model_; }

 private:
  struct Row {
    std::shared_ptr<PendingRequest> request;
    size_t index;
  };

  std::optional<ScoreOutcome> admit(std::unique_lock<std::mutex>& lock, size_t n,
                                    WhenFull when_full,
                                    std::chrono::steady_clock::time_point deadline);
  void run_worker();
  bool batch_ready() const;
  std::vector<Row> take_batch();
  void score_batch(const std::vector<Row>& batch);
  void score_rows(const std::vector<Row>& rows, bool isolate_failures);

  std::shared_ptr<rewards::RewardModel> model_;
  BatcherOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;  // the worker: samples queued, or stop
  std::condition_variable room_;  // kWait tasks: samples left the queue, or stop
  std::deque<Row> queue_;
  int64_t queued_tokens_ = 0;
  size_t waiting_ = 0;  // samples of kWait tasks waiting for room
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace rudder::services::detail
