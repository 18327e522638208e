#include "rewards/remote_reward_model.h"

#include <cmath>
#include <cstdlib>
#include <mutex>
#include <optional>

#include "core/endpoint_pool.h"
#include "core/error.h"
#include "core/http_client.h"
#include "core/proto_http.h"
#include "proto/rudder.pb.h"

namespace rudder::rewards {
namespace {

// An answer no other server would change: the request itself is bad.
class BadRequest : public core::InvalidArgument {
 public:
  using core::InvalidArgument::InvalidArgument;
};

core::EndpointPoolOptions pool_options(const RemoteRewardOptions& o) {
  RUDDER_CHECK(o.max_items_per_request >= 1, "max_items_per_request must be >= 1");
  core::EndpointPoolOptions p;
  p.what = "reward server";
  p.endpoints = o.endpoints;
  p.request_timeout = o.request_timeout;
  p.max_retries = o.max_retries;
  p.retry_backoff = o.retry_backoff;
  p.endpoint_cooldown = o.endpoint_cooldown;
  p.token = o.token;
  return p;
}

}  // namespace

class RemoteRewardModel::Impl {
 public:
  explicit Impl(RemoteRewardOptions o) : options(std::move(o)), pool(pool_options(options)) {}

  // One attempt; fills `reply` or returns the failure.
  static std::optional<core::AttemptFailure> attempt(core::HttpClient& client,
                                                     const std::string& name,
                                                     const std::string& body, size_t items,
                                                     ScoreResponse* reply) {
    core::HttpResponse response;
    try {
      const std::string type(core::media_type(core::Wire::kProtobuf));
      response = client.request("POST", "/v1/score", body, type, type);
    } catch (const std::exception& err) {
      return core::AttemptFailure{err.what(), true};
    }
    if (response.status == 400 || response.status == 413)
      throw BadRequest(core::str("reward server ", name, " refused the request (HTTP ",
                                 response.status, "): ", core::error_message(response)));
    if (response.status != 200) {
      return core::AttemptFailure{
          core::str("HTTP ", response.status, ": ", core::error_message(response)),
          response.status != 429 && response.status != 503};
    }
    const bool proto = response.content_type.find(core::kProtobufType) != std::string::npos;
    try {
      core::decode_message(response.body, proto ? core::Wire::kProtobuf : core::Wire::kJson, reply);
    } catch (const std::exception& err) {
      return core::AttemptFailure{core::str("malformed reply: ", err.what()), true};
    }
    if (static_cast<size_t>(reply->rewards_size()) != items)
      return core::AttemptFailure{
          core::str("reply has ", reply->rewards_size(), " rewards for ", items, " items"), true};
    for (float r : reply->rewards()) {
      if (!std::isfinite(r))
        return core::AttemptFailure{core::str("reply has a non-finite reward ", r), true};
    }
    return std::nullopt;
  }

  ScoreResponse send(const ScoreRequest& request) {
    const std::string body = core::encode_message(request, core::Wire::kProtobuf);
    ScoreResponse reply;
    pool.run([&](core::HttpClient& client, const std::string& name) {
      reply.Clear();
      return attempt(client, name, body, static_cast<size_t>(request.items_size()), &reply);
    });
    return reply;
  }

  std::vector<ScoreDetail> score(const std::vector<std::string>& prompts,
                                 const std::vector<std::string>& responses,
                                 const ScoreOptions& score_options) {
    RUDDER_CHECK(prompts.size() == responses.size(), "score: ", prompts.size(), " prompts but ",
                 responses.size(), " responses");
    std::lock_guard<std::mutex> lock(mutex);
    std::vector<ScoreDetail> out;
    out.reserve(prompts.size());
    for (size_t start = 0; start < prompts.size(); start += options.max_items_per_request) {
      const size_t end = std::min(prompts.size(), start + options.max_items_per_request);
      ScoreRequest request;
      request.set_return_token_rewards(score_options.token_rewards);
      request.set_return_dimension_scores(score_options.dimension_scores);
      for (size_t i = start; i < end; ++i) {
        auto* item = request.add_items();
        item->set_prompt(prompts[i]);
        item->set_response(responses[i]);
      }
      const ScoreResponse reply = send(request);
      version = reply.model_version();
      append(reply, &out);
    }
    return out;
  }

  static void append(const ScoreResponse& reply, std::vector<ScoreDetail>* out) {
    for (int i = 0; i < reply.rewards_size(); ++i) {
      ScoreDetail d;
      d.reward = reply.rewards(i);
      if (i < reply.details_size()) {
        const auto& detail = reply.details(i);
        d.token_rewards.assign(detail.token_rewards().begin(), detail.token_rewards().end());
        for (const auto& [name, value] : detail.dimension_scores())
          d.dimension_scores[name] = value;
        d.category = detail.category();
      }
      out->push_back(std::move(d));
    }
  }

  RemoteRewardOptions options;
  core::EndpointPool pool;
  std::string version = "remote";
  mutable std::mutex mutex;
};

RemoteRewardOptions remote_options_from_config(const RewardConfig& config) {
  RemoteRewardOptions o;
  o.endpoints.assign(config.endpoints().begin(), config.endpoints().end());
  o.request_timeout = std::chrono::milliseconds(config.request_timeout_ms());
  o.max_retries = static_cast<int>(config.max_retries());
  o.retry_backoff = std::chrono::milliseconds(config.retry_backoff_ms());
  o.endpoint_cooldown = std::chrono::milliseconds(config.endpoint_cooldown_ms());
  o.max_items_per_request = config.max_items_per_request();
  o.token = core::token_from_env(config.token_env(), "reward.token_env");
  return o;
}

RemoteRewardModel::RemoteRewardModel(RemoteRewardOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

RemoteRewardModel::~RemoteRewardModel() = default;

std::vector<double> RemoteRewardModel::score(const std::vector<std::string>& prompts,
                                             const std::vector<std::string>& responses) {
  std::vector<double> out;
  for (const auto& d : impl_->score(prompts, responses, {})) out.push_back(d.reward);
  return out;
}

std::vector<ScoreDetail> RemoteRewardModel::score_detailed(
    const std::vector<std::string>& prompts, const std::vector<std::string>& responses,
    const ScoreOptions& options) {
  return impl_->score(prompts, responses, options);
}

std::string RemoteRewardModel::version() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->version;
}

int64_t RemoteRewardModel::failovers() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->pool.failovers();
}

}  // namespace rudder::rewards
