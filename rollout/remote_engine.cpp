#include "rollout/remote_engine.h"

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <optional>

#include "core/digest.h"
#include "core/endpoint_pool.h"
#include "core/error.h"
#include "core/log.h"
#include "core/proto_http.h"
#include "proto/rudder.pb.h"
#include "rollout/generate_protocol.h"

namespace rudder::rollout {
namespace {

using Clock = std::chrono::steady_clock;

// An answer no other server would change: the request itself is bad.
class BadRequest : public core::InvalidArgument {
 public:
  using core::InvalidArgument::InvalidArgument;
};

core::EndpointPoolOptions pool_options(const RemoteEngineOptions& o) {
  RUDDER_CHECK(o.max_samples_per_request >= 1, "max_samples_per_request must be >= 1");
  core::EndpointPoolOptions p;
  p.what = "rollout server";
  p.endpoints = o.endpoints;
  p.request_timeout = o.request_timeout;
  p.max_retries = o.max_retries;
  p.retry_backoff = o.retry_backoff;
  p.endpoint_cooldown = o.endpoint_cooldown;
  p.token = o.token;
  return p;
}

// POSTs `body` to `target`; a failure to retry elsewhere, or the decoded reply in `reply`.
std::optional<core::AttemptFailure> post(core::HttpClient& client, const std::string& name,
                                         const std::string& target, const std::string& body,
                                         google::protobuf::Message* reply) {
  core::HttpResponse response;
  try {
    const std::string type(core::media_type(core::Wire::kProtobuf));
    response = client.request("POST", target, body, type, type);
  } catch (const std::exception& err) {
    return core::AttemptFailure{err.what(), true};
  }
  const int status = response.status;
  if (status == 400 || status == 409 || status == 413 || (status == 404 && target == "/v1/weights"))
    throw BadRequest(core::str("rollout server ", name, " refused ", target, " (HTTP ", status,
                               "): ", core::error_message(response)));
  if (status != 200) {
    return core::AttemptFailure{core::str("HTTP ", status, ": ", core::error_message(response)),
                                status != 429 && status != 503};
  }
  const bool proto = response.content_type.find(core::kProtobufType) != std::string::npos;
  try {
    core::decode_message(response.body, proto ? core::Wire::kProtobuf : core::Wire::kJson, reply);
  } catch (const std::exception& err) {
    return core::AttemptFailure{core::str("malformed reply: ", err.what()), true};
  }
  return std::nullopt;
}

}  // namespace

class RemoteEngine::Impl {
 public:
  explicit Impl(RemoteEngineOptions o) : options(std::move(o)), pool(pool_options(options)) {}

  // Sends one chunk of requests; returns their outputs.
  std::vector<GenerateOutput> send(const std::vector<GenerateInput>& chunk) {
    const GenerateRequest request = to_request(chunk);
    const std::string body = core::encode_message(request, core::Wire::kProtobuf);
    std::vector<GenerateOutput> outputs;
    pool.run([&](core::HttpClient& client, const std::string& name) {
      const auto start = Clock::now();
      GenerateResponse reply;
      auto failure = post(client, name, "/v1/generate", body, &reply);
      if (failure) return failure;
      std::string problem;
      outputs = from_response(reply, chunk, &problem);
      if (!problem.empty()) return std::optional<core::AttemptFailure>({problem, true});
      const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      for (auto& out : outputs) out.total_seconds = seconds;
      version = reply.policy_version();
      return failure;
    });
    return outputs;
  }

  RemoteEngineOptions options;
  core::EndpointPool pool;
  std::string version = "remote";
  mutable std::mutex mutex;
};

RemoteEngineOptions remote_engine_options_from_config(const RolloutConfig& config) {
  RemoteEngineOptions o;
  o.endpoints.assign(config.endpoints().begin(), config.endpoints().end());
  o.request_timeout = std::chrono::milliseconds(config.request_timeout_ms());
  o.max_retries = static_cast<int>(config.max_retries());
  o.retry_backoff = std::chrono::milliseconds(config.retry_backoff_ms());
  o.endpoint_cooldown = std::chrono::milliseconds(config.endpoint_cooldown_ms());
  o.max_samples_per_request = config.max_samples_per_request();
  o.token = core::token_from_env(config.token_env(), "rollout.token_env");
  return o;
}

RemoteEngine::RemoteEngine(RemoteEngineOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

RemoteEngine::~RemoteEngine() = default;

std::vector<GenerateOutput> RemoteEngine::generate(const std::vector<GenerateInput>& requests) {
  for (size_t i = 0; i < requests.size(); ++i) {
    validate_sampling(requests[i].sampling, core::str("generate request ", i));
    RUDDER_CHECK(requests[i].n >= 1, "generate request ", i, ": n must be at least 1");
  }
  std::lock_guard<std::mutex> lock(impl_->mutex);
  std::vector<GenerateOutput> out;
  out.reserve(requests.size());
  for (const auto& [begin, end] :
       chunk_requests(requests, impl_->options.max_samples_per_request)) {
    const std::vector<GenerateInput> chunk(requests.begin() + static_cast<std::ptrdiff_t>(begin),
                                           requests.begin() + static_cast<std::ptrdiff_t>(end));
    for (auto& o : impl_->send(chunk)) out.push_back(std::move(o));
  }
  return out;
}

std::vector<std::vector<float>> RemoteEngine::score(const std::vector<ScoreInput>& /*inputs*/) {
  throw core::InvalidArgument(
      "RemoteEngine::score: scoring continuations is not supported remotely (the rollout server "
      "has no scoring route); score with a LocalEngine");
}

std::string RemoteEngine::policy_version() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->version;
}

int64_t RemoteEngine::failovers() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->pool.failovers();
}

PushResult RemoteEngine::push_weights(const std::string& path, const std::string& version) {
  WeightUpdate update;
  update.set_version(version);
  update.set_path(path);
  update.set_sha256(core::sha256_file(weights_file(path)));
  const std::string body = core::encode_message(update, core::Wire::kProtobuf);
  std::lock_guard<std::mutex> lock(impl_->mutex);
  const std::vector<std::string> names = impl_->pool.names();
  const auto failures =
      impl_->pool.run_on_each([&](core::HttpClient& client, const std::string& name) {
        WeightUpdateResponse reply;
        auto failure = post(client, name, "/v1/weights", body, &reply);
        if (!failure && reply.version() != version)
          failure = core::AttemptFailure{core::str("serves version '", reply.version(), "'"), true};
        return failure;
      });
  PushResult result;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!failures[i]) {
      result.updated.push_back(names[i]);
      continue;
    }
    result.unreachable.push_back(names[i]);
    RUDDER_LOG(kWarn) << "rollout server " << names[i] << " did not take weights version "
                      << version << ": " << failures[i]->message;
  }
  RUDDER_CHECK_T(core::Unavailable, !result.updated.empty(), "no rollout server took weights ",
                 path, " as version ", version, " (", failures.front()->message, ")");
  return result;
}

}  // namespace rudder::rollout
