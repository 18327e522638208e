// Several servers of one kind behind one client: round-robin, retries and failover. The HTTP
// clients of the reward and rollout servers share it.
//
// An attempt that fails with `cooldown` (connection failure, timeout, 5xx other than 503, a
// malformed reply) rests its endpoint for `endpoint_cooldown`; one without (429, 503) passes
// the request to the next endpoint only. Resting endpoints are tried after live ones. After a
// round in which every endpoint failed, the next round starts after `retry_backoff`, doubled
// each round; after `max_retries` extra rounds run() throws Unavailable naming every endpoint's
// last error.
//
// Thread-safety: none; callers serialize (each endpoint keeps one HttpClient).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/http_client.h"

namespace rudder::core {

/// The servers of an EndpointPool and how to retry them.
struct EndpointPoolOptions {
  std::string what = "server";         // names the servers in messages ("reward server")
  std::vector<std::string> endpoints;  // "host:port" (an "http://" prefix is accepted)
  std::chrono::milliseconds request_timeout{60000};
  int max_retries = 3;  // extra rounds over every endpoint
  std::chrono::milliseconds retry_backoff{200};
  std::chrono::milliseconds endpoint_cooldown{5000};
  std::string token;  // bearer token; empty: none
};

/// Why one attempt on one endpoint failed, and whether the endpoint should rest.
struct AttemptFailure {
  std::string message;
  bool cooldown = true;
};

/// One attempt of a request on one endpoint: nothing on success, else why it failed. It may
/// throw to end the request at once (a 400 another server would repeat).
using Attempt =
    std::function<std::optional<AttemptFailure>(HttpClient& client, const std::string& name)>;

/// Round-robin with failover over several servers.
class EndpointPool {
 public:
  /// Validates the options (throws InvalidArgument naming a malformed endpoint); connects lazily.
  explicit EndpointPool(EndpointPoolOptions options);
  ~EndpointPool();
  EndpointPool(const EndpointPool&) = delete;
  EndpointPool& operator=(const EndpointPool&) = delete;

  /// Runs `attempt` until one succeeds, as the header comment says.
  void run(const Attempt& attempt);
  /// Runs `attempt` once on every endpoint; returns each one's failure (nothing: success).
  std::vector<std::optional<AttemptFailure>> run_on_each(const Attempt& attempt);

  /// Endpoint names (host:port), in the configured order.
  std::vector<std::string> names() const;
  /// Requests answered by another endpoint after one failed.
  int64_t failovers() const { return failovers_; }

 private:
  struct Endpoint;
  std::vector<Endpoint*> round_order();

  EndpointPoolOptions options_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  size_t cursor_ = 0;
  int64_t failovers_ = 0;
};

/// The message of a JSON error body (`{"error": {"message": ...}}`), or the body's start.
std::string error_message(const HttpResponse& response);

/// The bearer token in environment variable `variable` ("" when `variable` is empty). Throws
/// InvalidArgument naming the config key `key` when the variable is unset or empty.
std::string token_from_env(const std::string& variable, const std::string& key);

}  // namespace rudder::core
