// The reward server (`rudder serve reward`): scores prompt/response pairs with one RewardModel.
//
// Routes: POST /v1/score (ScoreRequest -> ScoreResponse, JSON or protobuf), GET /v1/models
// (ListModelsResponse), POST /get_reward (OpenRLHF's remote reward protocol, JSON only; see
// openrlhf_protocol.h), and the core's /healthz, /readyz (200 once serve() has a model) and
// /metrics. One worker thread owns the model and scores dynamic batches (detail/score_batcher.h);
// HTTP threads only parse, check limits, wait and format. Each waiting request holds an HTTP
// thread, so `server.threads` bounds the requests in flight.
//
// Statuses: 400 malformed body or empty request/sample, 413 too many samples or a sample over
// the token limit (/get_reward scores a sample longer than the model reads as the model reads
// it, cut as in training, and 413s only what is over max_sequence_tokens after that; it scores
// a request of more than max_samples_per_request samples in parts of that many), 429 queue
// full (at once, with Retry-After), 503 not ready, shutting down or not scored within
// `request_timeout_ms` (the request was not scored: safe to retry elsewhere).
//
// Thread-safety: handle() may be called from any thread; serve() once, from any thread.
#pragma once

#include <cstdint>
#include <memory>

#include "core/http.h"
#include "core/http_server.h"

namespace rudder {
class RewardServerConfig;
}

namespace rudder::rewards {
class RewardModel;
}

namespace rudder::services {

/// Routes and batching of the reward server over a core::HttpServer.
class RewardServer {
 public:
  /// Validates `config` (throws InvalidArgument naming the bad value) and registers the routes.
  RewardServer(const RewardServerConfig& config, core::HttpServerOptions http);
  ~RewardServer();
  RewardServer(const RewardServer&) = delete;
  RewardServer& operator=(const RewardServer&) = delete;

  /// Starts the worker that owns `model` and marks the server ready. Call once.
  void serve(std::shared_ptr<rewards::RewardModel> model);

  /// Binds and starts the HTTP threads (see core::HttpServer::start).
  void start();
  /// The bound port (after start()).
  uint16_t port() const;
  /// SIGINT/SIGTERM start a graceful shutdown (after start()).
  void handle_signals();
  /// Stops accepting and drains in-flight requests; returns at once.
  void shutdown();
  /// Blocks until the HTTP server has stopped.
  void wait();

  /// Routes one request without sockets (tests; the sessions call the same code).
  core::HttpResponse handle(const core::HttpRequest& request) const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace rudder::services
