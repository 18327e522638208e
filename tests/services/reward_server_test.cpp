// The reward server's handlers without sockets: limits, the OpenRLHF protocol, truncation,
// deadlines (reward_server_sockets_test.cpp has the tests on 127.0.0.1).
#include "services/reward_server.h"

#include <chrono>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/proto_http.h"
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

}  // namespace
}  // namespace rudder::services
