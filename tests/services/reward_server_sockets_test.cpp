// The reward server on 127.0.0.1: equal scores in process, over /v1/score, over /get_reward
// and through the client; a full queue, deadlines and malformed requests over real sockets.
#include "services/reward_server.h"

#include <chrono>
#include <future>
#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/proto_http.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "rewards/dmoerm.h"
#include "rewards/dmoerm_reward_model.h"
#include "rewards/remote_reward_model.h"
#include "tests/services/reward_fixtures.h"
#include "tests/support/raw_socket.h"
#include "tests/support/tiny_models.h"

namespace rudder::services {
namespace {

using core::HttpResponse;
using nlohmann::json;
using namespace std::chrono_literals;
using testing::FakeRewardModel;

std::string score_body(int items, const std::string& response = "r") {
  json body;
  body["items"] = json::array();
  for (int i = 0; i < items; ++i)
    body["items"].push_back({{"prompt", "p"}, {"response", response}});
  return body.dump();
}

// Opens the model's gate when the test ends, passed or not, so the server can drain.
struct OpenAtExit {
  std::shared_ptr<FakeRewardModel> model;
  ~OpenAtExit() { model->open(); }
};

// The server's rudder_reward_queue_depth, read from /metrics.
double queue_depth(uint16_t port) {
  const std::string text = testing::client_for(port)->request("GET", "/metrics").body;
  const std::string name = "\nrudder_reward_queue_depth ";
  const auto at = text.find(name);
  return at == std::string::npos ? -1 : std::stod(text.substr(at + name.size()));
}

ScoreRequest score_request(const std::vector<std::string>& prompts,
                           const std::vector<std::string>& responses) {
  ScoreRequest request;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto* item = request.add_items();
    item->set_prompt(prompts[i]);
    item->set_response(responses[i]);
  }
  return request;
}

TEST(RewardServerSockets, SameScoresInProcessOverScoreOverGetRewardAndThroughTheClient) {
  auto model = testing::tiny_reward_model(11);
  const std::vector<std::string> prompts = {"2+2=", "review, positive:", "x", ""};
  const std::vector<std::string> responses = {"4", "great film, fun", "a longer response here",
                                              "only a response"};
  const std::vector<double> expected = model->score(prompts, responses);
  auto server = testing::start_server(model);
  auto client = testing::client_for(server->port());

  ScoreRequest request = score_request(prompts, responses);
  for (const core::Wire wire : {core::Wire::kJson, core::Wire::kProtobuf}) {
    ScoreResponse reply;
    client->call("/v1/score", request, &reply, wire);
    ASSERT_EQ(reply.rewards_size(), 4);
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(reply.rewards(i), expected[i], 1e-5) << i;
  }
  json get_reward;
  get_reward["query"] = json::array();
  for (size_t i = 0; i < prompts.size(); ++i)
    get_reward["query"].push_back(prompts[i] + responses[i]);
  get_reward["prompts"] = prompts;
  const core::HttpResponse r = client->request("POST", "/get_reward", get_reward.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const json rewards = json::parse(r.body)["rewards"];
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(rewards[i].get<double>(), expected[i], 1e-5) << i;

  rewards::RemoteRewardOptions o;
  o.endpoints = {"127.0.0.1:" + std::to_string(server->port())};
  o.max_items_per_request = 3;  // two requests
  rewards::RemoteRewardModel remote(o);
  const std::vector<double> got = remote.score(prompts, responses);
  ASSERT_EQ(got.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(got[i], expected[i], 1e-5) << i;
  EXPECT_EQ(remote.version(), "scalar");
}

// A DMoERM's dimension scores and routed category come back the same in process, over
// /v1/score and through RemoteRewardModel.
TEST(RewardServerSockets, DmoermDetailsAreTheSameInProcessOverScoreAndThroughTheClient) {
  torch::manual_seed(4);
  DmoermConfig config;
  config.set_expert_rank(4);
  config.set_expert_alpha(8);
  auto net = std::make_shared<rewards::DmoermNet>(
      std::make_shared<models::CausalLM>(rudder::testing::tiny_llama()),
      rewards::DmoermLayout{{"math", "prose"}, {"correctness", "format"}}, config);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->parameters()) p.add_(torch::randn_like(p) * 0.05);  // adapters not zero
  }
  DataConfig data;
  data.set_max_length(64);
  data.set_max_prompt_length(32);
  auto model = std::make_shared<rewards::DmoermRewardModel>(net, data::make_byte_tokenizer(),
                                                            TokenizerConfig(), data);
  const std::vector<std::string> prompts = {"2+2=", "review, positive:", "reverse abc:"};
  const std::vector<std::string> responses = {"4", "great film, fun", "cba"};
  const auto expected = model->score_detailed(prompts, responses, {false, true});
  auto server = testing::start_server(model);
  auto client = testing::client_for(server->port());
  ScoreRequest request = score_request(prompts, responses);
  request.set_return_dimension_scores(true);
  ScoreResponse reply;
  client->call("/v1/score", request, &reply, core::Wire::kJson);
  ASSERT_EQ(reply.details_size(), 3);
  rewards::RemoteRewardOptions o;
  o.endpoints = {"127.0.0.1:" + std::to_string(server->port())};
  rewards::RemoteRewardModel remote(o);
  const auto through_client = remote.score_detailed(prompts, responses, {false, true});
  ASSERT_EQ(through_client.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const auto& want = expected[static_cast<size_t>(i)];
    EXPECT_FALSE(want.category.empty());
    EXPECT_NEAR(reply.rewards(i), want.reward, 1e-5) << i;
    EXPECT_EQ(reply.details(i).category(), want.category) << i;
    const auto& got = through_client[static_cast<size_t>(i)];
    EXPECT_NEAR(got.reward, want.reward, 1e-5) << i;
    EXPECT_EQ(got.category, want.category) << i;
    ASSERT_EQ(got.dimension_scores.size(), want.dimension_scores.size());
    for (const auto& [name, value] : want.dimension_scores) {
      EXPECT_NEAR(reply.details(i).dimension_scores().at(name), value, 1e-5) << name;
      EXPECT_NEAR(got.dimension_scores.at(name), value, 1e-5) << name;
    }
  }
}

TEST(RewardServerSockets, FullQueueIsAnswered429AtOnce) {
  auto model = std::make_shared<FakeRewardModel>();
  auto server = testing::start_server(
      model, "{max_batch_size: 1, max_queue: 2, max_samples_per_request: 2}", 8);
  OpenAtExit open_at_exit{model};
  model->close();
  auto blocked = std::async(std::launch::async, [&] {
    return testing::client_for(server->port())->request("POST", "/v1/score", score_body(1));
  });
  model->wait_entered();  // the worker holds the first request
  auto queued = std::async(std::launch::async, [&] {
    return testing::client_for(server->port())->request("POST", "/v1/score", score_body(2));
  });
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (queue_depth(server->port()) < 2 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(5ms);
  ASSERT_EQ(queue_depth(server->port()), 2);
  auto client = testing::client_for(server->port());
  const auto start = std::chrono::steady_clock::now();
  const core::HttpResponse refused = client->request("POST", "/v1/score", score_body(1));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(refused.status, 429) << refused.body;
  // "At once": far below the 30 s request timeout it would otherwise wait (loose on purpose,
  // for a loaded machine).
  EXPECT_LT(seconds, 5.0) << "a full queue must not make the client wait";
  EXPECT_NE(refused.body.find("the queue is full"), std::string::npos) << refused.body;
  bool retry_after = false;
  for (const auto& [name, value] : refused.headers) retry_after |= name == "Retry-After";
  EXPECT_TRUE(retry_after);
  model->open();
  EXPECT_EQ(blocked.get().status, 200);
  EXPECT_EQ(queued.get().status, 200);
  EXPECT_EQ(client->request("POST", "/v1/score", score_body(1)).status, 200);
}

TEST(RewardServerSockets, RequestsPastTheirDeadlineAre503AndTheServerRecovers) {
  auto model = std::make_shared<FakeRewardModel>();
  auto server = testing::start_server(model, "{max_batch_size: 1, request_timeout_ms: 300}", 8);
  OpenAtExit open_at_exit{model};
  model->close();
  auto blocked = std::async(std::launch::async, [&] {
    return testing::client_for(server->port())->request("POST", "/v1/score", score_body(1));
  });
  model->wait_entered();
  const core::HttpResponse late =
      testing::client_for(server->port())->request("POST", "/v1/score", score_body(1));
  EXPECT_EQ(late.status, 503) << late.body;
  EXPECT_NE(late.body.find("not scored within reward_server.request_timeout_ms"), std::string::npos)
      << late.body;
  EXPECT_EQ(blocked.get().status, 503);  // its own deadline passed while the model held it
  model->open();
  EXPECT_EQ(testing::client_for(server->port())->request("POST", "/v1/score", score_body(1)).status,
            200);
}

TEST(RewardServerSockets, MalformedOversizedAndEnormousRequestsGet4xxAndTheNextSucceeds) {
  auto server = testing::start_server(std::make_shared<FakeRewardModel>(), "{}", 4, 4u << 20);
  auto client = testing::client_for(server->port());
  const auto next_succeeds = [&] {
    EXPECT_EQ(client->request("POST", "/v1/score", score_body(1)).status, 200);
  };
  core::HttpResponse r = client->request("POST", "/v1/score", R"({"items": [{"prompt": )");
  EXPECT_EQ(r.status, 400) << r.body;
  next_succeeds();
  // Refused on its Content-Length, before the body is read.
  const std::string oversized = rudder::testing::exchange(
      server->port(),
      "POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
          std::to_string(5u << 20) + "\r\n\r\n");
  EXPECT_EQ(oversized.rfind("HTTP/1.1 413", 0), 0u) << oversized;
  next_succeeds();
  r = client->request("POST", "/v1/score", score_body(50000));
  EXPECT_EQ(r.status, 413) << r.body;
  EXPECT_NE(r.body.find("50000 samples in one request"), std::string::npos) << r.body;
  next_succeeds();
  r = client->request("POST", "/get_reward", R"({"query": [)" + std::string(100, '[') + "]}");
  EXPECT_EQ(r.status, 400) << r.body;
  next_succeeds();
}

}  // namespace
}  // namespace rudder::services
