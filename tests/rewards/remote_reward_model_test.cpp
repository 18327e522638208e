#include "rewards/remote_reward_model.h"

#include <atomic>
#include <functional>
#include <thread>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/http_server.h"
#include "core/launcher.h"
#include "core/proto_http.h"
#include "proto/rudder.pb.h"

namespace rudder::rewards {
namespace {

using namespace std::chrono_literals;

// A stand-in reward server: /v1/score answers as `behaviour` says (default: reward = length of
// the response) and counts the requests it got.
class FakeServer {
 public:
  using Behaviour = std::function<core::HttpResponse(const core::HttpRequest&, ScoreRequest&)>;

  explicit FakeServer(Behaviour behaviour = {}) : behaviour_(std::move(behaviour)) {
    core::HttpServerOptions o;
    o.threads = 2;
    server_ = std::make_unique<core::HttpServer>(o);
    server_->route("POST", "/v1/score", [this](const core::HttpRequest& request) {
      ++requests_;
      ScoreRequest body;
      core::parse_message(request, &body);
      if (behaviour_) return behaviour_(request, body);
      ScoreResponse reply;
      reply.set_model_version("fake-" + std::to_string(server_->port()));
      for (const auto& item : body.items()) reply.add_rewards(item.response().size());
      return core::message_response(request, reply);
    });
    server_->start();
  }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(server_->port()); }
  int requests() const { return requests_.load(); }

 private:
  Behaviour behaviour_;
  std::unique_ptr<core::HttpServer> server_;
  std::atomic<int> requests_{0};
};

core::HttpResponse answer(int status) { return core::error_response(status, "fake failure"); }

RemoteRewardOptions options_for(const std::vector<std::string>& endpoints) {
  RemoteRewardOptions o;
  o.endpoints = endpoints;
  o.request_timeout = 5s;
  o.max_retries = 1;
  o.retry_backoff = 10ms;
  o.endpoint_cooldown = 60s;
  return o;
}

const std::vector<std::string> kPrompts = {"p", "q"};
const std::vector<std::string> kResponses = {"abc", "hello"};

TEST(RemoteRewardModel, RoundRobinOverEndpoints) {
  FakeServer a, b;
  RemoteRewardModel model(options_for({a.endpoint(), b.endpoint()}));
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(model.score(kPrompts, kResponses), (std::vector<double>{3, 5}));
  EXPECT_EQ(a.requests(), 2);
  EXPECT_EQ(b.requests(), 2);
  EXPECT_EQ(model.failovers(), 0);
  EXPECT_EQ(model.version().rfind("fake-", 0), 0u);
}

TEST(RemoteRewardModel, SplitsLargeBatches) {
  FakeServer a;
  RemoteRewardOptions o = options_for({a.endpoint()});
  o.max_items_per_request = 2;
  RemoteRewardModel model(o);
  const std::vector<std::string> p(5, "p"), r = {"a", "bb", "ccc", "dddd", "eeeee"};
  EXPECT_EQ(model.score(p, r), (std::vector<double>{1, 2, 3, 4, 5}));
  EXPECT_EQ(a.requests(), 3);
}

TEST(RemoteRewardModel, ADeadEndpointIsSkippedThenRetriedAfterItsCooldown) {
  FakeServer broken([](const core::HttpRequest&, ScoreRequest&) { return answer(500); });
  FakeServer good;
  const std::string nobody = "127.0.0.1:" + std::to_string(core::free_local_port());
  RemoteRewardOptions o = options_for({nobody, broken.endpoint(), good.endpoint()});
  o.endpoint_cooldown = 300ms;
  RemoteRewardModel model(o);
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(model.score(kPrompts, kResponses), (std::vector<double>{3, 5}));
  EXPECT_EQ(broken.requests(), 1);  // skipped while it rests
  EXPECT_EQ(good.requests(), 6);
  EXPECT_GE(model.failovers(), 1);
  std::this_thread::sleep_for(400ms);
  for (int i = 0; i < 3; ++i) model.score(kPrompts, kResponses);
  EXPECT_EQ(broken.requests(), 2);  // tried again once rested
}

TEST(RemoteRewardModel, MalformedRepliesFailOverAndNeverReachTheCaller) {
  FakeServer short_reply([](const core::HttpRequest& request, ScoreRequest&) {
    ScoreResponse reply;
    reply.add_rewards(1);  // one reward for two items
    return core::message_response(request, reply);
  });
  FakeServer good;
  RemoteRewardModel model(options_for({short_reply.endpoint(), good.endpoint()}));
  EXPECT_EQ(model.score(kPrompts, kResponses), (std::vector<double>{3, 5}));
  EXPECT_EQ(short_reply.requests(), 1);
  EXPECT_EQ(good.requests(), 1);
}

TEST(RemoteRewardModel, OverloadedEndpointsArePassedOverWithoutResting) {
  FakeServer busy([](const core::HttpRequest&, ScoreRequest&) { return answer(429); });
  FakeServer good;
  RemoteRewardModel model(options_for({busy.endpoint(), good.endpoint()}));
  for (int i = 0; i < 4; ++i) model.score(kPrompts, kResponses);
  EXPECT_EQ(busy.requests(), 2);  // asked every time round-robin put it first: never rested
  EXPECT_EQ(good.requests(), 4);
}

TEST(RemoteRewardModel, EveryEndpointFailingThrowsUnavailableNamingThem) {
  FakeServer broken([](const core::HttpRequest&, ScoreRequest&) { return answer(503); });
  const std::string nobody = "127.0.0.1:" + std::to_string(core::free_local_port());
  RemoteRewardModel model(options_for({broken.endpoint(), nobody}));
  try {
    model.score(kPrompts, kResponses);
    FAIL() << "expected Unavailable";
  } catch (const core::Unavailable& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("every reward server failed after 2 rounds"), std::string::npos) << what;
    EXPECT_NE(what.find(broken.endpoint() + ": HTTP 503"), std::string::npos) << what;
    EXPECT_NE(what.find(nobody + ": "), std::string::npos) << what;
  }
  EXPECT_EQ(broken.requests(), 2);
}

TEST(RemoteRewardModel, ABadRequestIsRefusedAtOnce) {
  FakeServer refusing([](const core::HttpRequest&, ScoreRequest&) { return answer(413); });
  FakeServer good;
  RemoteRewardModel model(options_for({refusing.endpoint(), good.endpoint()}));
  EXPECT_THROW(model.score(kPrompts, kResponses), core::InvalidArgument);
  EXPECT_EQ(good.requests(), 0);
  EXPECT_THROW(model.score({"a"}, {}), core::InvalidArgument);
}

TEST(RemoteRewardModel, MalformedEndpointsAreNamed) {
  for (const std::string bad : {"localhost", "host:port", "host:70000", ":80"}) {
    try {
      RemoteRewardModel model(options_for({bad}));
      FAIL() << bad;
    } catch (const core::InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("'" + bad + "'"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(RemoteRewardModel(options_for({"http://127.0.0.1:8080/"})));
  EXPECT_THROW(RemoteRewardModel(options_for({})), core::InvalidArgument);
}

}  // namespace
}  // namespace rudder::rewards
