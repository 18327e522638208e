// The reward server's handlers without sockets, then on 127.0.0.1: limits, overload, deadlines
// and equal scores on every path.
#include "services/reward_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

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
#include "tests/support/tiny_models.h"

namespace rudder::services {
namespace {

using core::HttpRequest;
using core::HttpResponse;
using nlohmann::json;
using namespace std::chrono_literals;
using testing::FakeRewardModel;

HttpRequest post(const std::string& path, const std::string& body) {
  HttpRequest r;
  r.method = "POST";
  r.target = r.path = path;
  r.headers["content-type"] = "application/json";
  r.body = body;
  return r;
}

HttpRequest get(const std::string& path) {
  HttpRequest r;
  r.method = "GET";
  r.target = r.path = path;
  return r;
}

std::string message_of(const HttpResponse& r) {
  return json::parse(r.body).at("error").at("message").get<std::string>();
}

class RewardHandlers : public ::testing::Test {
 protected:
  RewardHandlers()
      : server_(testing::config_from_yaml("reward_server: {max_samples_per_request: 4, "
                                          "max_sequence_tokens: 16}")
                    .reward_server(),
                core::HttpServerOptions{}) {}
  void serve() { server_.serve(model_); }

  std::shared_ptr<FakeRewardModel> model_ = std::make_shared<FakeRewardModel>();
  RewardServer server_;
};

TEST_F(RewardHandlers, NotReadyUntilTheModelIsServed) {
  EXPECT_EQ(server_.handle(get("/healthz")).status, 200);
  EXPECT_EQ(server_.handle(get("/readyz")).status, 503);
  const HttpResponse r = server_.handle(post("/v1/score", R"({"items":[{"response":"x"}]})"));
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(message_of(r).find("still loading"), std::string::npos) << r.body;
  serve();
  EXPECT_EQ(server_.handle(get("/readyz")).status, 200);
}

TEST_F(RewardHandlers, ScoresJsonAndProtobufBodies) {
  serve();
  const HttpResponse r = server_.handle(
      post("/v1/score", R"({"items":[{"prompt":"p","response":"abc"},{"response":"hello"}]})"));
  ASSERT_EQ(r.status, 200) << r.body;
  ScoreResponse reply;
  core::decode_message(r.body, core::Wire::kJson, &reply);
  ASSERT_EQ(reply.rewards_size(), 2);
  EXPECT_EQ(reply.rewards(0), 3);
  EXPECT_EQ(reply.rewards(1), 5);
  EXPECT_EQ(reply.model_version(), "fake");
  EXPECT_EQ(reply.details_size(), 0);

  ScoreRequest request;
  request.add_items()->set_response("four");
  HttpRequest binary = post("/v1/score", core::encode_message(request, core::Wire::kProtobuf));
  binary.headers["content-type"] = binary.headers["accept"] = std::string(core::kProtobufType);
  const HttpResponse b = server_.handle(binary);
  ASSERT_EQ(b.status, 200);
  EXPECT_EQ(b.content_type, core::kProtobufType);
  core::decode_message(b.body, core::Wire::kProtobuf, &reply);
  EXPECT_EQ(reply.rewards(0), 4);
}

TEST_F(RewardHandlers, BadRequestsGetA4xxNamingTheProblem) {
  serve();
  const auto expect = [&](const HttpRequest& request, int status, const std::string& words) {
    const HttpResponse r = server_.handle(request);
    EXPECT_EQ(r.status, status) << request.body << " -> " << r.body;
    EXPECT_NE(message_of(r).find(words), std::string::npos) << r.body;
  };
  expect(post("/v1/score", R"({"items":[]})"), 400, "nothing to score");
  expect(post("/v1/score", R"({"items":[{"prompt":"","response":""}]})"), 400, "sample 0 is empty");
  expect(post("/v1/score", R"({"items":[{"response":"a"},{},{},{},{}]})"), 413,
         "5 samples in one request, over reward_server.max_samples_per_request=4");
  expect(post("/v1/score", R"({"items":[{"response":"a"},{"response":"seventeen bytes!!"}]})"), 413,
         "sample 1 has 17 tokens, over the limit of 16");
  expect(post("/v1/score", R"({"items":[{"response":"a"}],"return_token_rewards":true})"), 400,
         "gives no per-token rewards");
  expect(post("/v1/score", R"({"items":[{"response":"a"}],"return_dimension_scores":true})"), 400,
         "gives no per-dimension scores");
  expect(post("/v1/score", R"({"items": [)"), 400, "malformed JSON");
  expect(post("/v1/score", R"({"itemz": []})"), 400, "malformed JSON");
  expect(post("/get_reward", R"({"query": "not a list"})"), 400, "\"query\" must be a list");
  expect(post("/get_reward", R"({"prompts": ["a"]})"), 400, "missing \"query\"");
  expect(post("/get_reward", R"({"query": ["ab"], "prompts": ["a", "b"]})"), 400,
         "\"prompts\" has 2 texts but \"query\" has 1");
  expect(post("/get_reward", R"({"query": ["ab"], "labels": [1, 2]})"), 400, "\"labels\" must");
  expect(post("/get_reward", R"({"query": [1]})"), 400, "\"query\"[0] must be a string");
  expect(post("/get_reward", std::string(R"({"query": ["a"]})") + '\0' + "junk"), 400,
         "a NUL byte at offset 16");
  expect(get("/v1/score"), 405, "not allowed");
  // The server still answers.
  EXPECT_EQ(server_.handle(post("/v1/score", R"({"items":[{"response":"ok"}]})")).status, 200);
}

TEST_F(RewardHandlers, GetRewardStripsThePromptOrScoresTheWholeQuery) {
  serve();
  HttpResponse r = server_.handle(post(
      "/get_reward",
      R"({"query": ["Q: 2+2?A: 4", "Q: hi?A: hello"], "prompts": ["Q: 2+2?", "Q: hi?"], "labels": ["4", null]})"));
  ASSERT_EQ(r.status, 200) << r.body;
  json body = json::parse(r.body);
  EXPECT_EQ(body["rewards"], json({4.0, 8.0}));  // "A: 4", "A: hello"
  EXPECT_EQ(body["scores"], body["rewards"]);
  EXPECT_EQ(body["extra_logs"]["num_tokens"], json({11, 14}));
  r = server_.handle(post("/get_reward", R"({"query": ["Q: 2+2?A: 4"]})"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["rewards"], json({11.0}));
}

// What OpenRLHF's clients send: queries decoded with their padding and EOS text (the served
// tokenizer's, cut from both ends), prompts cut to the client's prompt length (the query is then
// scored whole), keys of their own, and an empty share of a batch split over several servers.
TEST_F(RewardHandlers, GetRewardTakesWhatOpenRlhfClientsSend) {
  serve();
  HttpResponse r = server_.handle(post(
      "/get_reward", R"({"query": ["Q: 2+2?A: 4", "</s><pad>"], "prompts": ["Q: 2+2?", ""]})"));
  ASSERT_EQ(r.status, 400) << r.body;  // the second query is nothing but EOS and padding
  EXPECT_NE(message_of(r).find("sample 1 is empty"), std::string::npos) << r.body;
  r = server_.handle(post("/get_reward", R"({
      "query": ["<pad><pad>Q: 2+2?A: 4</s>", "Q: hi?A: hello</s><pad><pad>", "<s>Q: 2+2?A: 4",
                "Q: 2+A: 4"],
      "prompts": ["Q: 2+2?", "Q: hi?", "Q: 2+2?", "Q: 2+2?"],
      "labels": [null, null, null, null], "datasources": ["math"], "metadata": {"k": 1}})"));
  ASSERT_EQ(r.status, 200) << r.body;
  json body = json::parse(r.body);
  // The fake scores a response by its length: "A: 4", "A: hello", "A: 4", the whole "Q: 2+A: 4".
  EXPECT_EQ(body["rewards"], json({4.0, 8.0, 4.0, 9.0}));
  EXPECT_EQ(body["extra_logs"]["prompt_found"], json({1, 1, 1, 0}));
  EXPECT_EQ(body["extra_logs"]["num_tokens"], json({11, 14, 11, 9}));
  EXPECT_EQ(body["extra_logs"]["truncated"], json({0, 0, 0, 0}));  // the fake reads any length
  r = server_.handle(post("/get_reward", R"({"query": [], "prompts": [], "labels": []})"));
  ASSERT_EQ(r.status, 200) << r.body;
  body = json::parse(r.body);
  EXPECT_EQ(body["rewards"], json::array());
  EXPECT_EQ(body["scores"], json::array());
  EXPECT_EQ(body["extra_logs"]["num_tokens"], json::array());
  r = server_.handle(post("/get_reward", R"({"query": ["<pad>A: 4</s>"]})"));
  ASSERT_EQ(r.status, 200) << r.body;
  body = json::parse(r.body);
  EXPECT_EQ(body["rewards"], json({4.0}));
  EXPECT_FALSE(body["extra_logs"].contains("prompt_found"));
}

// OpenRLHF sends a whole rollout batch in one request: over max_samples_per_request (4 here)
// samples, /get_reward scores it in parts of 4, in order, after checking every sample; /v1/score
// answers 413.
TEST_F(RewardHandlers, GetRewardScoresARequestOverTheSampleLimitInParts) {
  serve();
  json queries = json::array();
  for (int k = 1; k <= 10; ++k) queries.push_back(std::string(static_cast<size_t>(k), 'a'));
  HttpResponse r = server_.handle(post("/get_reward", json{{"query", queries}}.dump()));
  ASSERT_EQ(r.status, 200) << r.body;
  const json body = json::parse(r.body);
  EXPECT_EQ(body["rewards"], json({1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0}));
  EXPECT_EQ(body["extra_logs"]["num_tokens"], json({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  for (const size_t size : model_->batch_sizes()) EXPECT_LE(size, 4u);
  // A sample over the token limit in the last part: 413 naming it, and no part is scored.
  const size_t batches = model_->batch_sizes().size();
  queries.push_back(std::string(17, 'b'));
  r = server_.handle(post("/get_reward", json{{"query", queries}}.dump()));
  EXPECT_EQ(r.status, 413) << r.body;
  EXPECT_NE(message_of(r).find("sample 10 has 17 tokens"), std::string::npos) << r.body;
  EXPECT_EQ(model_->batch_sizes().size(), batches);
}

// The prompt is looked for in time linear in the texts: periodic texts of megabytes, for which
// libstdc++'s std::boyer_moore_searcher took time quadratic in the prompt (tens of minutes
// here), are answered at once.
TEST(RewardServerPromptSearch, PeriodicMegabyteTextsAreSearchedInLinearTime) {
  RewardServer server(
      testing::config_from_yaml("reward_server: {max_sequence_tokens: 4000000}").reward_server(),
      core::HttpServerOptions{});
  server.serve(std::make_shared<FakeRewardModel>());
  const size_t n = 2'000'000;
  const json request = {{"query", {std::string(n, 'z'), "y" + std::string(n + 10, 'z')}},
                        {"prompts", {"q" + std::string(n / 2, 'z'), std::string(n, 'z')}}};
  const HttpResponse r = server.handle(post("/get_reward", request.dump()));
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 200);
  const json body = json::parse(r.body);
  EXPECT_EQ(body["extra_logs"]["prompt_found"], json({0, 1}));
  // The fake scores the response's length: the whole first query, the 10 bytes after the prompt.
  EXPECT_EQ(body["rewards"], json({static_cast<double>(n), 10.0}));
}

// OpenRLHF's own server truncates at its --max_len, and its clients end a run on a 413: a query
// longer than the model reads (data.max_length 64 here) is scored as the model reads it, as in
// process, and marked in extra_logs. /v1/score keeps its 413 for the same sample.
TEST(RewardServerTruncation, GetRewardScoresAnOverLongQueryAsTheModelReadsIt) {
  const auto model = testing::tiny_reward_model(3);
  RewardServer server(testing::config_from_yaml("{}").reward_server(), core::HttpServerOptions{});
  server.serve(model);
  const std::string prompt = "Q: tell it at length?";
  std::string long_response;
  while (long_response.size() < 150) long_response += "and then it went on, ";
  const std::vector<std::string> prompts = {prompt, prompt};
  const std::vector<std::string> responses = {long_response, "short"};
  ASSERT_GT(model->count_tokens(prompt, long_response), 64);

  const json request = {{"query", {prompt + long_response, prompt + "short"}},
                        {"prompts", prompts}};
  const HttpResponse r = server.handle(post("/get_reward", request.dump()));
  ASSERT_EQ(r.status, 200) << r.body;
  const json body = json::parse(r.body);
  const std::vector<double> in_process = model->score(prompts, responses);
  ASSERT_EQ(body["rewards"].size(), 2u);
  for (size_t i = 0; i < 2; ++i)
    EXPECT_NEAR(body["rewards"][i].get<double>(), in_process[i], 1e-5) << i;
  EXPECT_NE(in_process[0], model->score({prompt}, {long_response.substr(0, 20)})[0]);
  EXPECT_EQ(body["extra_logs"]["truncated"], json({1, 0}));
  EXPECT_EQ(body["extra_logs"]["num_tokens"],
            json({int64_t{64}, model->count_tokens(prompt, "short")}));

  json items = json::array();
  items.push_back({{"prompt", prompt}, {"response", long_response}});
  const HttpResponse strict = server.handle(post("/v1/score", json{{"items", items}}.dump()));
  EXPECT_EQ(strict.status, 413) << strict.body;
  EXPECT_NE(message_of(strict).find("data.max_length"), std::string::npos) << strict.body;

  // Where max_sequence_tokens is below the model's limit, what the model reads is still bound.
  RewardServer narrow(
      testing::config_from_yaml("reward_server: {max_sequence_tokens: 32}").reward_server(),
      core::HttpServerOptions{});
  narrow.serve(model);
  const HttpResponse over = narrow.handle(post("/get_reward", request.dump()));
  EXPECT_EQ(over.status, 413) << over.body;
  EXPECT_NE(
      message_of(over).find(core::str("sample 0 has ", model->count_tokens(prompt, long_response),
                                      " tokens (the model reads 64), over the limit of 32")),
      std::string::npos)
      << over.body;
}

TEST_F(RewardHandlers, ModelsListsTheServedModelAndItsLimits) {
  serve();
  const HttpResponse r = server_.handle(get("/v1/models"));
  ASSERT_EQ(r.status, 200) << r.body;
  ListModelsResponse reply;
  core::decode_message(r.body, core::Wire::kJson, &reply);
  ASSERT_EQ(reply.models_size(), 1);
  EXPECT_EQ(reply.models(0).id(), "fake");
  EXPECT_EQ(reply.models(0).max_sequence_tokens(), 16u);
  EXPECT_EQ(reply.models(0).max_samples_per_request(), 4u);
}

TEST(RewardServerConfigTest, ConfigErrorsNameTheValue) {
  const auto config =
      testing::config_from_yaml("reward_server: {max_queue: 10, max_samples_per_request: 20}");
  try {
    RewardServer server(config.reward_server(), core::HttpServerOptions{});
    FAIL() << "expected a config error";
  } catch (const core::InvalidArgument& e) {
    EXPECT_NE(
        std::string(e.what()).find("max_queue (10) must be at least max_samples_per_request (20)"),
        std::string::npos)
        << e.what();
  }
}

// ---- On 127.0.0.1 ----

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

// Sends only the header of a POST whose Content-Length is `length`; returns what comes back.
std::string send_header_only(uint16_t port, size_t length) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    const std::string header =
        "POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: "
        "application/json\r\nContent-Length: " +
        std::to_string(length) + "\r\n\r\n";
    ::send(fd, header.data(), header.size(), MSG_NOSIGNAL);
    char buf[4096];
    for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;)
      out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
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

// A request's deadline counts from its arrival: time spent counting its tokens is within it.
TEST(RewardServerDeadline, CountingTokensIsWithinTheDeadline) {
  RewardServer server(
      testing::config_from_yaml("reward_server: {request_timeout_ms: 50}").reward_server(),
      core::HttpServerOptions{});
  auto model = std::make_shared<FakeRewardModel>();
  server.serve(model);
  const std::string body = R"({"items":[{"response":"a"},{"response":"b"},{"response":"c"}]})";
  EXPECT_EQ(server.handle(post("/v1/score", body)).status, 200);
  model->count_delay_ms = 30;  // 90 ms of counting, over the 50 ms deadline
  const HttpResponse late = server.handle(post("/v1/score", body));
  EXPECT_EQ(late.status, 503) << late.body;
  model->count_delay_ms = 0;
  EXPECT_EQ(server.handle(post("/v1/score", body)).status, 200);
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
  const std::string oversized = send_header_only(server->port(), 5u << 20);
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
