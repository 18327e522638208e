#include "core/endpoint_pool.h"

#include <algorithm>
#include <cstdlib>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"

namespace rudder::core {
namespace {

using Clock = std::chrono::steady_clock;

// Client options of one "host:port" endpoint.
HttpClientOptions client_options(const std::string& text, const EndpointPoolOptions& o,
                                 std::string* name) {
  std::string s = text.rfind("http://", 0) == 0 ? text.substr(7) : text;
  while (!s.empty() && s.back() == '/') s.pop_back();
  const auto colon = s.rfind(':');
  RUDDER_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < s.size(), o.what,
               " endpoint '", text, "': expected host:port");
  const std::string port_text = s.substr(colon + 1);
  RUDDER_CHECK(
      port_text.size() <= 5 && port_text.find_first_not_of("0123456789") == std::string::npos,
      o.what, " endpoint '", text, "': port '", port_text, "' is not a number");
  const int port = std::stoi(port_text);
  RUDDER_CHECK(port >= 1 && port <= 65535, o.what, " endpoint '", text, "': port ", port,
               " is outside 1..65535");
  HttpClientOptions c;
  c.host = s.substr(0, colon);
  c.port = static_cast<uint16_t>(port);
  c.request_timeout = o.request_timeout;
  c.connect_timeout = std::min(o.request_timeout, std::chrono::milliseconds(5000));
  c.max_retries = 0;  // retries and failover are decided by the pool, over every endpoint
  c.token = o.token;
  *name = s;
  return c;
}

}  // namespace

struct EndpointPool::Endpoint {
  std::string name;  // host:port
  std::unique_ptr<HttpClient> client;
  Clock::time_point skip_until{};
  std::string last_error = "not tried";
};

EndpointPool::EndpointPool(EndpointPoolOptions options) : options_(std::move(options)) {
  RUDDER_CHECK(!options_.endpoints.empty(), "a remote ", options_.what,
               " client needs at least one endpoint");
  RUDDER_CHECK(options_.max_retries >= 0, "max_retries must be >= 0, got ", options_.max_retries);
  for (const auto& text : options_.endpoints) {
    auto e = std::make_unique<Endpoint>();
    e->client = std::make_unique<HttpClient>(client_options(text, options_, &e->name));
    endpoints_.push_back(std::move(e));
  }
}

EndpointPool::~EndpointPool() = default;

std::vector<EndpointPool::Endpoint*> EndpointPool::round_order() {
  std::vector<Endpoint*> live, resting;
  const auto now = Clock::now();
  for (size_t k = 0; k < endpoints_.size(); ++k) {
    Endpoint* e = endpoints_[(cursor_ + k) % endpoints_.size()].get();
    (e->skip_until <= now ? live : resting).push_back(e);
  }
  cursor_ = (cursor_ + 1) % endpoints_.size();
  live.insert(live.end(), resting.begin(), resting.end());
  return live;
}

void EndpointPool::run(const Attempt& attempt) {
  auto backoff = options_.retry_backoff;
  bool failed_before = false;
  for (int round = 0; round <= options_.max_retries; ++round) {
    if (round > 0) {
      std::this_thread::sleep_for(backoff);
      backoff *= 2;
    }
    for (Endpoint* e : round_order()) {
      const auto failure = attempt(*e->client, e->name);
      if (!failure) {
        e->skip_until = {};
        if (failed_before) ++failovers_;
        return;
      }
      failed_before = true;
      e->last_error = failure->message;
      if (failure->cooldown) e->skip_until = Clock::now() + options_.endpoint_cooldown;
      RUDDER_LOG(kWarn) << options_.what << " " << e->name << ": " << failure->message
                        << (endpoints_.size() > 1 ? "; trying another" : "");
    }
  }
  std::string errors;
  for (const auto& e : endpoints_) errors += str("; ", e->name, ": ", e->last_error);
  throw Unavailable(
      str("every ", options_.what, " failed after ", options_.max_retries + 1, " rounds", errors));
}

std::vector<std::optional<AttemptFailure>> EndpointPool::run_on_each(const Attempt& attempt) {
  std::vector<std::optional<AttemptFailure>> out;
  for (const auto& e : endpoints_) {
    out.push_back(attempt(*e->client, e->name));
    if (out.back()) e->last_error = out.back()->message;
  }
  return out;
}

std::vector<std::string> EndpointPool::names() const {
  std::vector<std::string> out;
  for (const auto& e : endpoints_) out.push_back(e->name);
  return out;
}

std::string error_message(const HttpResponse& response) {
  try {
    return nlohmann::json::parse(response.body).at("error").at("message").get<std::string>();
  } catch (const std::exception&) {
    return response.body.substr(0, 200);
  }
}

std::string token_from_env(const std::string& variable, const std::string& key) {
  if (variable.empty()) return "";
  const char* value = std::getenv(variable.c_str());
  RUDDER_CHECK(value != nullptr && *value != '\0', key, " names ", variable,
               ", which is not set or empty");
  return value;
}

}  // namespace rudder::core
