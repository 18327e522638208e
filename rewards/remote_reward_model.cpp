#include "rewards/remote_reward_model.h"

#include <cmath>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/http_client.h"
#include "core/log.h"
#include "core/proto_http.h"
#include "proto/rudder.pb.h"

namespace rudder::rewards {
namespace {

using Clock = std::chrono::steady_clock;

// Why one attempt on one endpoint failed, and whether the endpoint should rest.
struct Failure {
  std::string message;
  bool cooldown = true;
};

// An answer no other server would change: the request itself is bad.
class BadRequest : public core::InvalidArgument {
 public:
  using core::InvalidArgument::InvalidArgument;
};

// The message of a JSON error body, or the start of the body.
std::string error_message(const core::HttpResponse& response) {
  try {
    return nlohmann::json::parse(response.body).at("error").at("message").get<std::string>();
  } catch (const std::exception&) {
    return response.body.substr(0, 200);
  }
}

struct Endpoint {
  std::string name;  // host:port
  std::unique_ptr<core::HttpClient> client;
  Clock::time_point skip_until{};
  std::string last_error;
};

}  // namespace

class RemoteRewardModel::Impl {
 public:
  explicit Impl(RemoteRewardOptions o) : options(std::move(o)) {
    RUDDER_CHECK(!options.endpoints.empty(), "a remote reward model needs at least one endpoint");
    RUDDER_CHECK(options.max_items_per_request >= 1, "max_items_per_request must be >= 1");
    RUDDER_CHECK(options.max_retries >= 0, "max_retries must be >= 0, got ", options.max_retries);
    for (const auto& text : options.endpoints) endpoints.push_back(make_endpoint(text));
  }

  Endpoint make_endpoint(const std::string& text) const {
    std::string s = text.rfind("http://", 0) == 0 ? text.substr(7) : text;
    while (!s.empty() && s.back() == '/') s.pop_back();
    const auto colon = s.rfind(':');
    RUDDER_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < s.size(),
                 "reward endpoint '", text, "': expected host:port");
    const std::string port_text = s.substr(colon + 1);
    RUDDER_CHECK(
        port_text.size() <= 5 && port_text.find_first_not_of("0123456789") == std::string::npos,
        "reward endpoint '", text, "': port '", port_text, "' is not a number");
    const int port = std::stoi(port_text);
    RUDDER_CHECK(port >= 1 && port <= 65535, "reward endpoint '", text, "': port ", port,
                 " is outside 1..65535");
    core::HttpClientOptions c;
    c.host = s.substr(0, colon);
    c.port = static_cast<uint16_t>(port);
    c.request_timeout = options.request_timeout;
    c.connect_timeout = std::min(options.request_timeout, std::chrono::milliseconds(5000));
    c.max_retries = 0;  // retries and failover are decided here, over every endpoint
    c.token = options.token;
    return Endpoint{s, std::make_unique<core::HttpClient>(c), {}, ""};
  }

  // The order of one round: live endpoints from the round-robin cursor on, then resting ones.
  std::vector<Endpoint*> round_order() {
    std::vector<Endpoint*> live, resting;
    const auto now = Clock::now();
    for (size_t k = 0; k < endpoints.size(); ++k) {
      Endpoint& e = endpoints[(cursor + k) % endpoints.size()];
      (e.skip_until <= now ? live : resting).push_back(&e);
    }
    cursor = (cursor + 1) % endpoints.size();
    live.insert(live.end(), resting.begin(), resting.end());
    return live;
  }

  // One attempt; fills `reply` or returns the failure.
  std::optional<Failure> attempt(Endpoint& e, const std::string& body, size_t items,
                                 ScoreResponse* reply) {
    core::HttpResponse response;
    try {
      const std::string type(core::media_type(core::Wire::kProtobuf));
      response = e.client->request("POST", "/v1/score", body, type, type);
    } catch (const std::exception& err) {
      return Failure{err.what(), true};
    }
    if (response.status == 400 || response.status == 413)
      throw BadRequest(core::str("reward server ", e.name, " refused the request (HTTP ",
                                 response.status, "): ", error_message(response)));
    if (response.status != 200) {
      return Failure{core::str("HTTP ", response.status, ": ", error_message(response)),
                     response.status != 429 && response.status != 503};
    }
    const bool proto = response.content_type.find(core::kProtobufType) != std::string::npos;
    try {
      core::decode_message(response.body, proto ? core::Wire::kProtobuf : core::Wire::kJson, reply);
    } catch (const std::exception& err) {
      return Failure{core::str("malformed reply: ", err.what()), true};
    }
    if (static_cast<size_t>(reply->rewards_size()) != items)
      return Failure{
          core::str("reply has ", reply->rewards_size(), " rewards for ", items, " items"), true};
    for (float r : reply->rewards()) {
      if (!std::isfinite(r)) return Failure{core::str("reply has a non-finite reward ", r), true};
    }
    return std::nullopt;
  }

  ScoreResponse send(const ScoreRequest& request) {
    const std::string body = core::encode_message(request, core::Wire::kProtobuf);
    auto backoff = options.retry_backoff;
    bool failed_before = false;
    for (int round = 0; round <= options.max_retries; ++round) {
      if (round > 0) {
        std::this_thread::sleep_for(backoff);
        backoff *= 2;
      }
      for (Endpoint* e : round_order()) {
        ScoreResponse reply;
        const auto failure = attempt(*e, body, request.items_size(), &reply);
        if (!failure) {
          e->skip_until = {};
          if (failed_before) ++failovers;
          return reply;
        }
        failed_before = true;
        e->last_error = failure->message;
        if (failure->cooldown) e->skip_until = Clock::now() + options.endpoint_cooldown;
        RUDDER_LOG(kWarn) << "reward server " << e->name << ": " << failure->message
                          << (endpoints.size() > 1 ? "; trying another" : "");
      }
    }
    std::string errors;
    for (const auto& e : endpoints) errors += core::str("; ", e.name, ": ", e.last_error);
    throw core::Unavailable(
        core::str("every reward server failed after ", options.max_retries + 1, " rounds", errors));
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
      }
      out->push_back(std::move(d));
    }
  }

  RemoteRewardOptions options;
  std::vector<Endpoint> endpoints;
  size_t cursor = 0;
  int64_t failovers = 0;
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
  if (!config.token_env().empty()) {
    const char* value = std::getenv(config.token_env().c_str());
    RUDDER_CHECK(value != nullptr && *value != '\0', "reward.token_env names ", config.token_env(),
                 ", which is not set or empty");
    o.token = value;
  }
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
  return impl_->failovers;
}

}  // namespace rudder::rewards
