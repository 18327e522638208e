// The rollout server (`rudder serve rollout`): generates completions with one policy and takes
// new weights while it runs.
//
// Routes: POST /v1/generate (GenerateRequest -> GenerateResponse, JSON or protobuf; prompts as
// text, encoded by the server's tokenizer, or as token ids), POST /v1/weights (WeightUpdate ->
// WeightUpdateResponse), and the core's /healthz, /readyz (200 once serve() has a model) and
// /metrics. One worker thread owns the engine (detail/generate_worker.h); HTTP threads parse,
// check limits, wait and format; a weight update is read on a thread of its own that ends with
// it (so decoding goes on meanwhile, and no I/O thread keeps torch's thread team). Each
// waiting request holds an HTTP thread, so `server.threads` bounds the requests in flight.
//
// Every response names the policy version that produced all of its completions. A weight
// update is swapped in between requests: requests running when it arrives finish on the old
// weights; the reply comes once the new version serves.
//
// Statuses: 400 malformed body, unknown field, empty prompt, a sampling parameter out of range,
// max_new_tokens over `max_new_tokens_limit` or a prompt too long for `max_length`; 413 more
// samples than `max_samples_per_request` or a body over `server.max_body_bytes`; 429 queue full
// (at once, with Retry-After); 503 not ready, shutting down or not answered within
// `request_timeout_ms`. Weight updates: 400 bad version, SHA-256, file or sizes; 404 missing
// path; 409 version not above the served one, or another update in progress. A refused update
// changes nothing.
//
// Thread-safety: handle() may be called from any thread; serve() once, from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/http.h"
#include "core/http_server.h"

namespace rudder {
class RolloutServerConfig;
}
namespace rudder::data {
class Tokenizer;
}
namespace rudder::models {
class CausalLM;
}
namespace rudder::rollout {
class LogitsProcessor;
}

namespace rudder::services {

/// Routes, the engine's worker and weight updates of the rollout server.
class RolloutServer {
 public:
  /// Validates `config` (throws InvalidArgument naming the bad value) and registers the routes.
  RolloutServer(const RolloutServerConfig& config, core::HttpServerOptions http);
  ~RolloutServer();
  RolloutServer(const RolloutServer&) = delete;
  RolloutServer& operator=(const RolloutServer&) = delete;

  /// Snapshots `model` (version "0") into an engine on the model's device, starts the worker
  /// that owns it and marks the server ready. `tokenizer` encodes text prompts, decodes
  /// completions and gives the EOS token. `guidance` (GenARM, GeDi; see
  /// rollout::make_guidance) guides every request, whatever policy version serves it; it must be
  /// made for the config's max_batch and for `max_length`, the longest sequence served (0:
  /// rollout_server.max_length, or the model's positions when that is 0 too). Call once.
  void serve(const models::CausalLM& model, std::shared_ptr<const data::Tokenizer> tokenizer,
             std::vector<std::shared_ptr<rollout::LogitsProcessor>> guidance = {},
             int64_t max_length = 0);

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
