// The RewardModel interface over HTTP: scores on reward servers (`rudder serve reward`),
// round-robin over several endpoints, with retries and failover.
//
// Failover: an endpoint that fails to connect, times out, answers 5xx (other than 503), 401 or
// 404, or returns a malformed reply is skipped for `endpoint_cooldown`, then tried again. An
// overloaded endpoint (429, 503) is passed over for this request only. When a round over every
// endpoint fails, the next round starts after a backoff (doubled each round); score() throws
// Unavailable, naming every endpoint's last error, only when `max_retries` extra rounds failed
// too. A reply is never partial: every pair gets a finite reward or the call throws.
// A 400 or 413 answer (the request itself is bad, e.g. a sample over the server's token limit)
// throws InvalidArgument at once: another server would answer the same.
//
// Thread-safety: any number of threads may call; calls are served one at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rewards/reward_model.h"

namespace rudder {
class RewardConfig;
}

namespace rudder::rewards {

/// Where and how a RemoteRewardModel reaches its servers; see RewardConfig in the proto.
struct RemoteRewardOptions {
  std::vector<std::string> endpoints;  // "host:port" (an "http://" prefix is accepted)
  std::chrono::milliseconds request_timeout{60000};
  int max_retries = 3;  // extra rounds over every endpoint
  std::chrono::milliseconds retry_backoff{200};
  std::chrono::milliseconds endpoint_cooldown{5000};
  size_t max_items_per_request = 256;
  std::string token;  // bearer token; empty: none
};

/// Options from the config; the token is read from the `token_env` variable. Throws
/// InvalidArgument when that variable is named but unset.
RemoteRewardOptions remote_options_from_config(const RewardConfig& config);

/// Scores on reward servers.
class RemoteRewardModel : public RewardModel {
 public:
  /// Validates the options (throws InvalidArgument naming a malformed endpoint); connects lazily.
  explicit RemoteRewardModel(RemoteRewardOptions options);
  ~RemoteRewardModel() override;
  RemoteRewardModel(const RemoteRewardModel&) = delete;
  RemoteRewardModel& operator=(const RemoteRewardModel&) = delete;

  std::vector<double> score(const std::vector<std::string>& prompts,
                            const std::vector<std::string>& responses) override;

  /// Passes `options` on to the servers, which answer 400 when their model lacks something.
  std::vector<ScoreDetail> score_detailed(const std::vector<std::string>& prompts,
                                          const std::vector<std::string>& responses,
                                          const ScoreOptions& options) override;

  /// The model version of the last reply ("remote" before the first).
  std::string version() const override;

  /// Requests answered by another endpoint after one failed (for logs and tests).
  int64_t failovers() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace rudder::rewards
