// The RolloutEngine interface over HTTP: generates on rollout servers (`rudder serve rollout`),
// round-robin over several endpoints, with retries and failover; and pushes new policy weights
// to every server.
//
// Failover (as rewards::RemoteRewardModel): an endpoint that fails to connect, times out,
// answers 5xx (other than 503), 401 or 404, or returns a malformed reply is skipped for
// `endpoint_cooldown`, then tried again. An overloaded endpoint (429, 503) is passed over for
// this request only. When a round over every endpoint fails, the next starts after a backoff
// (doubled each round); generate() throws Unavailable, naming every endpoint's last error, only
// when `max_retries` extra rounds failed too. A request is never dropped or answered in part.
// A 400 or 413 answer throws InvalidArgument at once: another server would answer the same.
//
// Requests are sent in order, consecutive inputs with the same sampling parameters, sample
// count and prompt kind (text or ids) together, up to `max_samples_per_request` samples each.
// Timings in the outputs are the round trip of the HTTP request that carried them.
//
// Thread-safety: any number of threads may call; calls are served one at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rollout/engine.h"

namespace rudder::rollout {

/// Where and how a RemoteEngine reaches its servers; see RolloutConfig in the proto.
struct RemoteEngineOptions {
  std::vector<std::string> endpoints;  // "host:port" (an "http://" prefix is accepted)
  std::chrono::milliseconds request_timeout{120000};
  int max_retries = 3;  // extra rounds over every endpoint
  std::chrono::milliseconds retry_backoff{200};
  std::chrono::milliseconds endpoint_cooldown{5000};
  size_t max_samples_per_request = 256;
  std::string token;  // bearer token; empty: none
};

/// Options from the config; the token is read from the `token_env` variable. Throws
/// InvalidArgument when that variable is named but unset.
RemoteEngineOptions remote_engine_options_from_config(const RolloutConfig& config);

/// What push_weights() did.
struct PushResult {
  std::vector<std::string> updated;      // endpoints now serving the new version
  std::vector<std::string> unreachable;  // endpoints that could not be reached (logged)
};

/// Generation on rollout servers.
class RemoteEngine : public RolloutEngine {
 public:
  /// Validates the options (throws InvalidArgument naming a malformed endpoint); connects lazily.
  explicit RemoteEngine(RemoteEngineOptions options);
  ~RemoteEngine() override;
  RemoteEngine(const RemoteEngine&) = delete;
  RemoteEngine& operator=(const RemoteEngine&) = delete;

  std::vector<GenerateOutput> generate(const std::vector<GenerateInput>& requests) override;
  /// Not served by the rollout server: throws InvalidArgument.
  std::vector<std::vector<float>> score(const std::vector<ScoreInput>& inputs) override;
  /// The policy version of the last reply ("remote" before the first).
  std::string policy_version() const override;

  /// Posts a WeightUpdate of `path` (a model directory or .safetensors file, as the servers see
  /// it) as `version` to every server, with the SHA-256 of its model.safetensors computed here.
  /// Throws InvalidArgument when a server refuses the update (4xx: naming it and why), and
  /// Unavailable when no server could be reached; servers that could not be reached while
  /// others took the update are listed in the result and logged.
  PushResult push_weights(const std::string& path, const std::string& version);

  /// Requests answered by another endpoint after one failed (for logs and tests).
  int64_t failovers() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace rudder::rollout
