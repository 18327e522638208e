#include "services/rollout_server.h"

#include <chrono>
#include <future>
#include <mutex>

#include <torch/torch.h>

#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/proto_http.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "proto/rudder.pb.h"
#include "rollout/generate_protocol.h"
#include "rollout/local_engine.h"
#include "services/detail/generate_worker.h"
#include "services/detail/guarded.h"
#include "services/detail/weight_loader.h"

namespace rudder::services {
namespace {

using core::HttpRequest;
using core::HttpResponse;
using detail::guarded;

// What serve() set up; replaced as a whole, read without locks by the HTTP threads.
struct Serving {
  std::unique_ptr<detail::GenerateWorker> worker;
  std::shared_ptr<const data::Tokenizer> tokenizer;
  models::ModelSpec spec;  // the sizes weight updates must have
  std::string device;      // where updated weights go
  int64_t max_length = 0;
};

const core::Gauge& version_gauge() {
  static const core::Gauge g = core::gauge("rudder_rollout_policy_version",
                                           "Version of the policy weights served (a number).");
  return g;
}

void count_update(const std::string& result) {
  core::counter("rudder_rollout_weight_updates_total",
                "Weight updates, by result (applied, refused).", {{"result", result}})
      .inc();
}

}  // namespace

class RolloutServer::Impl {
 public:
  Impl(const RolloutServerConfig& c, core::HttpServerOptions http_options)
      : config(c), http(std::move(http_options)) {
    RUDDER_CHECK(config.max_batch() >= 1, "rollout_server.max_batch must be >= 1, got ",
                 config.max_batch());
    RUDDER_CHECK(config.max_samples_per_request() >= 1,
                 "rollout_server.max_samples_per_request must be >= 1, got ",
                 config.max_samples_per_request());
    RUDDER_CHECK(config.max_queue() >= config.max_samples_per_request(),
                 "rollout_server.max_queue (", config.max_queue(),
                 ") must be at least max_samples_per_request (", config.max_samples_per_request(),
                 "), or a full-size request could never be queued");
    RUDDER_CHECK(config.max_new_tokens_limit() >= 1,
                 "rollout_server.max_new_tokens_limit must be >= 1, got ",
                 config.max_new_tokens_limit());
    RUDDER_CHECK(config.request_timeout_ms() >= 1,
                 "rollout_server.request_timeout_ms must be >= 1, got ",
                 config.request_timeout_ms());
    http.route("POST", "/v1/generate",
               guarded([this](const HttpRequest& r) { return generate(r); }));
    http.route("POST", "/v1/weights", guarded([this](const HttpRequest& r) { return weights(r); }));
  }

  std::shared_ptr<const Serving> serving_now() const {
    auto s = std::atomic_load(&serving);
    RUDDER_CHECK_T(core::Unavailable, s != nullptr, "the policy is still loading");
    return s;
  }

  std::vector<rollout::GenerateInput> parse_inputs(const Serving& s,
                                                   const GenerateRequest& body) const;
  HttpResponse generate(const HttpRequest& request) const;
  HttpResponse weights(const HttpRequest& request);

  RolloutServerConfig config;
  std::mutex update_mutex;                 // one weight update at a time
  std::string served_sha256;               // of the last applied update; guarded by update_mutex
  std::shared_ptr<const Serving> serving;  // atomic access only; declared before `http` so
                                           // the HTTP threads stop first
  core::HttpServer http;
};

// The request's prompts as engine inputs, checked against the limits and the model.
std::vector<rollout::GenerateInput> RolloutServer::Impl::parse_inputs(
    const Serving& s, const GenerateRequest& body) const {
  std::vector<rollout::GenerateInput> inputs = rollout::from_request(body);
  const uint64_t samples = static_cast<uint64_t>(inputs.size()) * inputs.front().n;
  RUDDER_CHECK_T(core::TooLarge, samples <= config.max_samples_per_request(), inputs.size(),
                 " prompts x ", inputs.front().n, " samples = ", samples,
                 " samples in one request, over rollout_server.max_samples_per_request=",
                 config.max_samples_per_request(), "; split the request");
  const SamplingParams& p = inputs.front().sampling;  // with the defaults filled in
  rollout::validate_sampling(p, "generate request");
  RUDDER_CHECK(p.max_new_tokens() <= config.max_new_tokens_limit(),
               "generate request: max_new_tokens ", p.max_new_tokens(),
               " is over rollout_server.max_new_tokens_limit=", config.max_new_tokens_limit());
  const int64_t vocab = s.spec.vocab_size;
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto& in = inputs[i];
    if (in.prompt.empty()) in.prompt = s.tokenizer->encode(in.prompt_text);
    RUDDER_CHECK(!in.prompt.empty(), "prompt ", i, " encodes to no tokens");
    for (const int64_t id : in.prompt)
      RUDDER_CHECK(id >= 0 && id < vocab, "prompt ", i, ": token ", id,
                   " is outside the vocabulary of ", vocab);
    const auto length = static_cast<int64_t>(in.prompt.size());
    RUDDER_CHECK(length + p.max_new_tokens() <= s.max_length, "prompt ", i, " (", length,
                 " tokens) + max_new_tokens (", p.max_new_tokens(), ") exceeds max_length ",
                 s.max_length);
  }
  return inputs;
}

HttpResponse RolloutServer::Impl::generate(const HttpRequest& request) const {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(config.request_timeout_ms());
  GenerateRequest body;
  core::parse_message(request, &body);
  const auto s = serving_now();
  detail::GenerateOutcome outcome = s->worker->generate(parse_inputs(*s, body), deadline);
  if (outcome.status != 200) return detail::status_error(outcome.status, outcome.error);
  const std::string version = outcome.outputs.front().policy_version;
  return core::message_response(request, rollout::to_response(outcome.outputs, version));
}

HttpResponse RolloutServer::Impl::weights(const HttpRequest& request) {
  WeightUpdate body;
  core::parse_message(request, &body);
  const auto s = serving_now();
  std::unique_lock<std::mutex> lock(update_mutex, std::try_to_lock);
  if (!lock.owns_lock())
    return core::error_response(409, "another weight update is in progress; retry after it");
  const auto wanted = detail::parse_version(body.version());
  RUDDER_CHECK(wanted.has_value(),
               "weight update: version must be a decimal integer (the "
               "trainer's step), got '",
               body.version(), "'");
  const std::string current = s->worker->version();
  WeightUpdateResponse reply;
  reply.set_version(current);
  if (body.version() == current && !served_sha256.empty() && body.sha256() == served_sha256)
    return core::message_response(request, reply);  // a repeated push of what is served
  const auto served = detail::parse_version(current);
  if (served && *wanted <= *served) {
    count_update("refused");
    return core::error_response(
        409, core::str("weight update: version ", body.version(),
                       " is not above the served version ", current, "; nothing changed"));
  }
  detail::LoadedWeights loaded;
  try {
    // On a thread that ends with the load: each thread that runs torch's parallel copies keeps a
    // team of OpenMP threads for its lifetime, and the I/O threads live as long as the server.
    loaded = std::async(std::launch::async, [&] {
               return detail::load_weight_update(body, s->spec, s->device);
             }).get();
  } catch (...) {
    count_update("refused");
    throw;
  }
  const std::string error = s->worker->swap_weights(loaded.weights, body.version());
  RUDDER_CHECK(error.empty(), "weight update: the engine refused ", body.path(), ": ", error);
  served_sha256 = loaded.sha256;
  count_update("applied");
  version_gauge().set(static_cast<double>(*wanted));
  RUDDER_LOG(kInfo) << "serving policy version " << body.version() << " from " << body.path();
  reply.set_version(body.version());
  return core::message_response(request, reply);
}

RolloutServer::RolloutServer(const RolloutServerConfig& config, core::HttpServerOptions http)
    : impl_(std::make_unique<Impl>(config, std::move(http))) {}

RolloutServer::~RolloutServer() = default;

void RolloutServer::serve(const models::CausalLM& model,
                          std::shared_ptr<const data::Tokenizer> tokenizer,
                          std::vector<std::shared_ptr<rollout::LogitsProcessor>> guidance,
                          int64_t max_length) {
  RUDDER_CHECK(tokenizer != nullptr, "serve() needs a tokenizer");
  RUDDER_ASSERT(std::atomic_load(&impl_->serving) == nullptr, "serve() called twice");
  const RolloutServerConfig& c = impl_->config;
  rollout::LocalEngineOptions o;
  o.max_batch = c.max_batch();
  if (max_length == 0) max_length = c.max_length();
  o.max_length = max_length;
  o.eos_id = tokenizer->eos_id();
  o.tokenizer = tokenizer;
  o.seed = c.seed();
  o.guidance = std::move(guidance);
  auto engine = std::make_unique<rollout::LocalEngine>(model, o, "0");
  auto s = std::make_shared<Serving>();
  s->tokenizer = std::move(tokenizer);
  s->spec = model.spec();
  s->device = model.parameters().front().device().str();
  s->max_length = max_length > 0 ? max_length : model.spec().max_positions;
  s->worker = std::make_unique<detail::GenerateWorker>(std::move(engine), c.max_queue());
  version_gauge().set(0);
  std::atomic_store(&impl_->serving, std::shared_ptr<const Serving>(std::move(s)));
  impl_->http.set_ready(true);
}

void RolloutServer::start() { impl_->http.start(); }
uint16_t RolloutServer::port() const { return impl_->http.port(); }
void RolloutServer::handle_signals() { impl_->http.handle_signals(); }
void RolloutServer::shutdown() { impl_->http.shutdown(); }
void RolloutServer::wait() { impl_->http.wait(); }

HttpResponse RolloutServer::handle(const HttpRequest& request) const {
  return impl_->http.handle(request);
}

}  // namespace rudder::services
