// The rollout server's worker: one thread owns the LocalEngine. HTTP threads hand it whole
// requests (every prompt of a request runs on the same weights) through a bounded queue and a
// future each; the worker feeds the engine when its own queue runs dry, steps it while busy and
// swaps weights between requests: once a swap is pending it admits nothing new, lets running
// requests finish on the old weights, loads the new ones and resumes.
//
// Thread-safety: generate(), swap_weights() and the queries may be called from any thread; the
// engine is only ever touched by the worker thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "rollout/local_engine.h"

namespace rudder::services::detail {

/// What became of a request: 200 and one output per prompt, or an error status and message.
struct GenerateOutcome {
  int status = 200;
  std::string error;
  std::vector<rollout::GenerateOutput> outputs;
};

struct PendingGenerate;
struct PendingSwap;

/// The queue, the engine and its thread.
class GenerateWorker {
 public:
  /// Starts the worker; `max_queue` bounds the samples waiting (> 0).
  GenerateWorker(std::unique_ptr<rollout::LocalEngine> engine, size_t max_queue);
  /// Stops the worker; requests not finished are answered 503.
  ~GenerateWorker();
  GenerateWorker(const GenerateWorker&) = delete;
  GenerateWorker& operator=(const GenerateWorker&) = delete;

  /// Queues the prompts of one request and blocks until they finish (200), are refused (429
  /// queue full, 400 the engine refused one) or pass `deadline` (503; the request then leaves
  /// the queue, or the engine at its next step). Never throws.
  GenerateOutcome generate(std::vector<rollout::GenerateInput> inputs,
                           std::chrono::steady_clock::time_point deadline);

  /// Swaps in `weights` as `version` once running requests finish; blocks until done. Returns
  /// "" or why the engine refused them.
  std::string swap_weights(std::shared_ptr<const models::DecoderWeights> weights,
                           std::string version);

  /// The version of the weights serving requests now.
  std::string version() const;
  /// Samples waiting for the engine.
  size_t queue_depth() const;

 private:
  void run();
  bool feed_engine();
  void submit(const std::shared_ptr<PendingGenerate>& request);
  void apply_swap();
  void fail_all(const std::string& why);

  std::unique_ptr<rollout::LocalEngine> engine_;  // the worker's alone
  size_t max_queue_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<PendingGenerate>> queue_;
  size_t queued_samples_ = 0;
  std::vector<std::shared_ptr<PendingGenerate>> in_engine_;
  std::shared_ptr<PendingSwap> swap_;
  std::string version_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace rudder::services::detail
