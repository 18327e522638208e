#include "services/detail/score_batcher.h"

#include <algorithm>
#include <atomic>
#include <future>
#include <map>

#include "core/error.h"
#include "core/http.h"
#include "core/log.h"
#include "core/metrics.h"

namespace rudder::services::detail {

using Clock = std::chrono::steady_clock;

constexpr const char* kShuttingDown = "the reward server is shutting down";

/// A queued request. `abandoned` is set by its HTTP thread; the rest is touched by the worker
/// only (and by the submitting thread before the request is queued).
struct PendingRequest {
  ScoreTask task;
  std::vector<rewards::ScoreDetail> results;
  size_t remaining = 0;
  bool done = false;
  std::atomic<bool> abandoned{false};
  Clock::time_point enqueued;
  std::promise<ScoreOutcome> promise;

  void finish(ScoreOutcome outcome) {
    if (done) return;
    done = true;
    promise.set_value(std::move(outcome));
  }
  void fail(int status, std::string message) {
    ScoreOutcome o;
    o.status = status;
    o.error = std::move(message);
    finish(std::move(o));
  }
};

namespace {

std::vector<double> size_buckets() { return {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}; }
std::vector<double> token_buckets() {
  return {16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536};
}

const core::Gauge& queue_gauge() {
  static const core::Gauge g =
      core::gauge("rudder_reward_queue_depth", "Samples waiting for the reward model's worker.");
  return g;
}

void count_rejected(const std::string& reason) {
  core::counter("rudder_reward_rejected_total",
                "Scoring requests refused or dropped, by reason (queue_full, deadline).",
                {{"reason", reason}})
      .inc();
}

// Removes what a request did not ask for (the batch asked for the union of its requests).
void trim_details(const rewards::ScoreOptions& asked, std::vector<rewards::ScoreDetail>* details) {
  for (auto& d : *details) {
    if (!asked.token_rewards) d.token_rewards.clear();
    if (!asked.dimension_scores) d.dimension_scores.clear();
  }
}

}  // namespace

ScoreBatcher::ScoreBatcher(std::shared_ptr<rewards::RewardModel> model, BatcherOptions options)
    : model_(std::move(model)), options_(options) {
  RUDDER_CHECK(model_ != nullptr, "the reward server needs a model");
  RUDDER_CHECK(options_.max_batch_size >= 1, "max_batch_size must be >= 1, got ",
               options_.max_batch_size);
  RUDDER_CHECK(options_.max_batch_tokens >= 1, "max_batch_tokens must be >= 1, got ",
               options_.max_batch_tokens);
  RUDDER_CHECK(options_.max_queue >= 1, "max_queue must be >= 1, got ", options_.max_queue);
  worker_ = std::thread([this] { run_worker(); });
}

ScoreBatcher::~ScoreBatcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  room_.notify_all();
  worker_.join();
  std::unique_lock<std::mutex> lock(mutex_);
  room_.wait(lock, [this] { return waiting_ == 0; });
}

size_t ScoreBatcher::queue_depth() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size();
}

size_t ScoreBatcher::samples_waiting_for_room() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return waiting_;
}

// Waits, with kWait, until `n` samples fit in the queue; an error when they are not admitted.
// Called with `lock` held.
std::optional<ScoreOutcome> ScoreBatcher::admit(std::unique_lock<std::mutex>& lock, size_t n,
                                                WhenFull when_full, Clock::time_point deadline) {
  if (stop_) return ScoreOutcome{503, kShuttingDown, {}};
  if (n > options_.max_queue) {
    count_rejected("queue_full");
    return ScoreOutcome{429,
                        core::str(n, " samples can never fit the queue (max_queue ",
                                  options_.max_queue, "); send fewer in one request"),
                        {}};
  }
  // Room the waiting tasks are owed counts as taken for a new one.
  const size_t owed = when_full == WhenFull::kWait ? 0 : waiting_;
  if (queue_.size() + owed + n <= options_.max_queue) return std::nullopt;
  if (when_full == WhenFull::kRefuse) {
    count_rejected("queue_full");
    return ScoreOutcome{
        429,
        core::str("the queue is full for ", n, " samples (", queue_.size(), " waiting",
                  waiting_ > 0 ? core::str(", ", waiting_, " more waiting to enter") : "",
                  ", max_queue ", options_.max_queue, "); retry later or on another server"),
        {}};
  }
  waiting_ += n;
  const bool room = room_.wait_until(
      lock, deadline, [&] { return stop_ || queue_.size() + n <= options_.max_queue; });
  waiting_ -= n;
  if (stop_) {
    room_.notify_all();  // the destructor waits for the last waiting task to leave
    return ScoreOutcome{503, kShuttingDown, {}};
  }
  if (room) return std::nullopt;
  count_rejected("deadline");
  return ScoreOutcome{
      503, "not queued within reward_server.request_timeout_ms: the server is overloaded", {}};
}

ScoreOutcome ScoreBatcher::score(ScoreTask task, WhenFull when_full) {
  const size_t n = task.prompts.size();
  auto request = std::make_shared<PendingRequest>();
  request->remaining = n;
  request->results.resize(n);
  const auto deadline = task.deadline;
  int64_t tokens = 0;
  for (int64_t t : task.tokens) tokens += t;
  request->task = std::move(task);
  std::future<ScoreOutcome> future = request->promise.get_future();
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (auto refused = admit(lock, n, when_full, deadline)) return std::move(*refused);
    request->enqueued = Clock::now();  // after any wait for room: the queue wait starts here
    for (size_t i = 0; i < n; ++i) queue_.push_back({request, i});
    queued_tokens_ += tokens;
    queue_gauge().set(static_cast<double>(queue_.size()));
  }
  wake_.notify_one();
  if (future.wait_until(deadline) == std::future_status::timeout) {
    request->abandoned.store(true);
    count_rejected("deadline");
    return {
        503, "not scored within reward_server.request_timeout_ms: the server is overloaded", {}};
  }
  return future.get();
}

bool ScoreBatcher::batch_ready() const {
  return stop_ || queue_.size() >= options_.max_batch_size ||
         queued_tokens_ >= options_.max_batch_tokens;
}

void ScoreBatcher::run_worker() {
  for (;;) {
    std::vector<Row> batch;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_) break;
      const auto fill_by = queue_.front().request->enqueued + options_.max_queue_delay;
      wake_.wait_until(lock, fill_by, [this] { return batch_ready(); });
      if (stop_) break;
      batch = take_batch();
      queue_gauge().set(static_cast<double>(queue_.size()));
    }
    room_.notify_all();
    if (!batch.empty()) score_batch(batch);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& row : queue_) row.request->fail(503, kShuttingDown);
  queue_.clear();
  queue_gauge().set(0);
}

std::vector<ScoreBatcher::Row> ScoreBatcher::take_batch() {
  std::vector<Row> batch;
  int64_t tokens = 0;
  const auto now = Clock::now();
  static const core::Histogram wait =
      core::histogram("rudder_reward_queue_wait_seconds",
                      "Time a sample waited in the queue, in seconds.", core::latency_buckets());
  while (!queue_.empty() && batch.size() < options_.max_batch_size) {
    Row& row = queue_.front();
    const int64_t t = row.request->task.tokens[row.index];
    PendingRequest& r = *row.request;
    if (r.done || r.abandoned.load() || now >= r.task.deadline) {
      if (!r.done && !r.abandoned.load())
        r.fail(503, "not scored within reward_server.request_timeout_ms: the server is overloaded");
    } else {
      if (!batch.empty() && tokens + t > options_.max_batch_tokens) break;
      tokens += t;
      wait.observe(std::chrono::duration<double>(now - r.enqueued).count());
      batch.push_back(row);
    }
    queued_tokens_ -= t;
    queue_.pop_front();
  }
  return batch;
}

void ScoreBatcher::score_batch(const std::vector<Row>& batch) {
  static const core::Histogram sizes = core::histogram(
      "rudder_reward_batch_size", "Samples per forward pass of the reward model.", size_buckets());
  static const core::Histogram tokens =
      core::histogram("rudder_reward_batch_tokens", "Tokens per forward pass of the reward model.",
                      token_buckets());
  static const core::Histogram seconds = core::histogram(
      "rudder_reward_batch_seconds", "Time of one forward pass of the reward model, in seconds.",
      core::latency_buckets());
  static const core::Counter samples =
      core::counter("rudder_reward_samples_total", "Samples scored by the reward model.");
  int64_t n_tokens = 0;
  for (const auto& row : batch) n_tokens += row.request->task.tokens[row.index];
  const auto start = Clock::now();
  score_rows(batch, true);
  seconds.observe(std::chrono::duration<double>(Clock::now() - start).count());
  sizes.observe(static_cast<double>(batch.size()));
  tokens.observe(static_cast<double>(n_tokens));
  samples.inc(static_cast<double>(batch.size()));
}

void ScoreBatcher::score_rows(const std::vector<Row>& rows, bool isolate_failures) {
  std::vector<std::string> prompts, responses;
  rewards::ScoreOptions options;
  for (const auto& row : rows) {
    const ScoreTask& t = row.request->task;
    prompts.push_back(t.prompts[row.index]);
    responses.push_back(t.responses[row.index]);
    options.token_rewards |= t.options.token_rewards;
    options.dimension_scores |= t.options.dimension_scores;
  }
  std::vector<rewards::ScoreDetail> details;
  try {
    details = model_->score_detailed(prompts, responses, options);
    RUDDER_ASSERT(details.size() == rows.size(), "the model returned ", details.size(),
                  " scores for ", rows.size(), " samples");
  } catch (const std::exception& e) {
    std::map<PendingRequest*, std::vector<Row>> by_request;
    for (const auto& row : rows) by_request[row.request.get()].push_back(row);
    if (isolate_failures && by_request.size() > 1) {
      // One bad request must not fail the others batched with it: score each on its own.
      for (const auto& [request, own] : by_request) score_rows(own, false);
      return;
    }
    const int status = core::status_for_exception(e);
    if (status >= 500)
      RUDDER_LOG(kError) << "scoring a batch of " << rows.size() << ": " << e.what();
    for (const auto& row : rows) row.request->fail(status, e.what());
    return;
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    PendingRequest& r = *rows[i].request;
    if (r.done) continue;
    r.results[rows[i].index] = std::move(details[i]);
    if (--r.remaining == 0) {
      trim_details(r.task.options, &r.results);
      r.finish({200, "", std::move(r.results)});
    }
  }
}

}  // namespace rudder::services::detail
