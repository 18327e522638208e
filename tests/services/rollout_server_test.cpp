// The rollout server's handlers without sockets (and two tests over loopback: 429, threads):
// answers match the local engine and name their policy version; bad input is a 4xx that leaves
// the server serving; weight updates are checked (version, SHA-256, path, sizes), refused ones
// change nothing, and applied ones serve the new weights, leaving no threads behind.
#include "services/rollout_server.h"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "data/tokenizer.h"
#include "models/hf_io.h"
#include "tests/services/reward_fixtures.h"
#include "tests/services/rollout_fixtures.h"
#include "tests/support/test_support.h"
#include "tests/support/tiny_models.h"

namespace rudder::services {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

core::HttpRequest post(const std::string& path, const std::string& body) {
  core::HttpRequest r;
  r.method = "POST";
  r.target = r.path = path;
  r.headers["content-type"] = "application/json";
  r.body = body;
  return r;
}

json greedy_body(int max_new = 8) {
  return {{"prompts", {"12+3=", "abc"}},
          {"num_samples", 2},
          {"sampling", {{"max_new_tokens", max_new}, {"temperature", 0}}}};
}

class RolloutServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    policy_ = testing::tiny_policy(3);
    server_ = testing::start_rollout_server(*policy_, "{max_batch: 4, max_new_tokens_limit: 64}");
  }
  core::HttpResponse call(const std::string& path, const std::string& body) const {
    return server_->handle(post(path, body));
  }
  std::string version() const {
    const auto r = call("/v1/generate", greedy_body(2).dump());
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body).value("policy_version", "");
  }

  std::shared_ptr<models::CausalLM> policy_;
  std::unique_ptr<RolloutServer> server_;
};

TEST_F(RolloutServerTest, GreedyCompletionsMatchTheLocalEngineAndNameTheVersion) {
  const auto r = call("/v1/generate", greedy_body().dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const json reply = json::parse(r.body);
  EXPECT_EQ(reply["policy_version"], "0");
  const auto expected = testing::local_generate(
      *policy_,
      {testing::text_request("12+3=", 8, 0, 1, 2), testing::text_request("abc", 8, 0, 1, 2)});
  ASSERT_EQ(reply["completions"].size(), 4u);
  for (const auto& c : reply["completions"]) {
    const size_t p = c.value("prompt_index", 0), s = c.value("sample_index", 0);
    const auto& want = expected[p].samples[s].tokens;
    ASSERT_EQ(c["token_ids"].size(), want.size());
    for (size_t t = 0; t < want.size(); ++t) EXPECT_EQ(c["token_ids"][t].get<int64_t>(), want[t]);
    EXPECT_EQ(c["policy_logprobs"].size(), want.size());
  }
  // Token-id prompts give the same answer as their text.
  json ids = {{"promptTokenIds", {{{"ids", data::make_byte_tokenizer()->encode("12+3=")}}}},
              {"sampling", {{"max_new_tokens", 8}, {"temperature", 0}}}};
  const auto by_ids = call("/v1/generate", ids.dump());
  ASSERT_EQ(by_ids.status, 200) << by_ids.body;
  EXPECT_EQ(json::parse(by_ids.body)["completions"][0]["token_ids"],
            reply["completions"][0]["token_ids"]);
}

TEST_F(RolloutServerTest, BadInputIsAClear4xxAndTheNextRequestSucceeds) {
  const std::vector<std::tuple<std::string, int, std::string>> cases = {
      {"{not json", 400, ""},
      {R"({"prompts": ["a"], "temprature": 1})", 400, "temprature"},
      {R"({})", 400, "nothing to generate"},
      {R"({"prompts": [""]})", 400, "prompt 0 is empty"},
      {R"({"prompts": ["a"], "promptTokenIds": [{"ids": [1]}]})", 400, "not both"},
      {R"({"prompts": ["a"], "num_samples": 1000000})", 413, "max_samples_per_request"},
      {R"({"prompts": ["a"], "sampling": {"max_new_tokens": 4000000000}})", 400,
       "max_new_tokens_limit"},
      {R"({"prompts": ["a"], "sampling": {"max_new_tokens": 60, "temperature": -1}})", 400,
       "temperature"},
      {R"({"promptTokenIds": [{"ids": [5, 999]}]})", 400, "outside the vocabulary"},
      {R"({"prompts": [")" + std::string(90, 'x') + R"("], "sampling": {"max_new_tokens": 10}})",
       400, "exceeds max_length"},
  };
  for (const auto& [body, status, words] : cases) {
    const auto r = call("/v1/generate", body);
    EXPECT_EQ(r.status, status) << body << " -> " << r.body;
    EXPECT_NE(r.body.find(words), std::string::npos) << body << " -> " << r.body;
    EXPECT_EQ(call("/v1/generate", greedy_body(2).dump()).status, 200) << "after " << body;
  }
}

TEST_F(RolloutServerTest, WeightUpdatesAreCheckedAndRefusedOnesChangeNothing) {
  rudder::testing::TempDir dir;
  const auto next = testing::tiny_policy(4);
  models::save_hf_model(*next, dir.path() + "/next");
  const std::string file = dir.path() + "/next/model.safetensors";
  const std::string sha = core::sha256_file(file);
  auto update = [&](const std::string& version, const std::string& path, const std::string& s) {
    return call("/v1/weights", json{{"version", version}, {"path", path}, {"sha256", s}}.dump());
  };
  const auto wrong = update("1", dir.path() + "/next", std::string(64, 'a'));
  EXPECT_EQ(wrong.status, 400);
  EXPECT_NE(wrong.body.find("is not aaaa"), std::string::npos) << wrong.body;
  EXPECT_EQ(wrong.body.find(sha), std::string::npos) << "the file's own digest: " << wrong.body;
  EXPECT_EQ(update("1", dir.path() + "/missing", sha).status, 404);
  EXPECT_EQ(update("v1", dir.path() + "/next", sha).status, 400);
  EXPECT_EQ(update("1", dir.path() + "/next", "abc").status, 400);
  // A file that is not weights is refused before it is read: its digest never comes back.
  {
    std::ofstream secret(dir.path() + "/secret.txt");
    secret << "not weights";
  }
  const auto secret = update("1", dir.path() + "/secret.txt", std::string(64, 'a'));
  EXPECT_EQ(secret.status, 400);
  EXPECT_NE(secret.body.find("neither a model directory nor a .safetensors file"),
            std::string::npos)
      << secret.body;
  EXPECT_EQ(secret.body.find(core::sha256_file(dir.path() + "/secret.txt")), std::string::npos);
  // Nor through a link named as weights, alone or as a model directory's file.
  fs::create_symlink(dir.path() + "/secret.txt", dir.path() + "/secret.safetensors");
  fs::create_directory(dir.path() + "/linked");
  fs::create_symlink(dir.path() + "/secret.txt", dir.path() + "/linked/model.safetensors");
  for (const char* linked : {"/secret.safetensors", "/linked"}) {
    const auto r = update("1", dir.path() + linked, std::string(64, 'a'));
    EXPECT_EQ(r.status, 400) << linked;
    EXPECT_NE(r.body.find("neither a model directory nor a .safetensors file"), std::string::npos)
        << r.body;
    EXPECT_EQ(r.body.find(core::sha256_file(dir.path() + "/secret.txt")), std::string::npos);
  }
  // Nor the contents of a file linked as a model directory's config (real weights beside it).
  fs::create_directory(dir.path() + "/config_linked");
  fs::copy_file(file, dir.path() + "/config_linked/model.safetensors");
  {
    std::ofstream text(dir.path() + "/token.txt");
    text << "{\"model_type\": \"sk-not-a-model\"}";
  }
  fs::create_symlink(dir.path() + "/token.txt", dir.path() + "/config_linked/config.json");
  const auto config = update("1", dir.path() + "/config_linked", sha);
  EXPECT_EQ(config.status, 400);
  EXPECT_NE(config.body.find("does not load as a model"), std::string::npos) << config.body;
  EXPECT_EQ(config.body.find("sk-not-a-model"), std::string::npos) << config.body;
  // A link loop, and a path that is no regular file, are 400 naming the cause (not 404 or 500).
  fs::create_symlink(dir.path() + "/loop_b.safetensors", dir.path() + "/loop_a.safetensors");
  fs::create_symlink(dir.path() + "/loop_a.safetensors", dir.path() + "/loop_b.safetensors");
  const auto loop = update("1", dir.path() + "/loop_a.safetensors", sha);
  EXPECT_EQ(loop.status, 400) << loop.body;
  EXPECT_NE(loop.body.find("cannot be read"), std::string::npos) << loop.body;
  fs::create_directory(dir.path() + "/not_a_file.safetensors");
  const auto not_file = update("1", dir.path() + "/not_a_file.safetensors/", sha);
  EXPECT_EQ(not_file.status, 404) << not_file.body;  // a directory: its model.safetensors
  fs::create_symlink("/dev/null", dir.path() + "/device.safetensors");
  const auto device = update("1", dir.path() + "/device.safetensors", sha);
  EXPECT_EQ(device.status, 400) << device.body;
  EXPECT_NE(device.body.find("is not a regular file"), std::string::npos) << device.body;
  auto other = testing::tiny_policy(5);
  {
    models::ModelSpec s = other->spec();
    s.num_layers = 1;
    models::save_hf_model(models::CausalLM(s), dir.path() + "/small");
  }
  const auto small = update("1", dir.path() + "/small",
                            core::sha256_file(dir.path() + "/small/model.safetensors"));
  EXPECT_EQ(small.status, 400);
  EXPECT_NE(small.body.find("other sizes"), std::string::npos) << small.body;
  EXPECT_EQ(version(), "0");

  const auto ok = update("7", dir.path() + "/next", sha);
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(json::parse(ok.body)["version"], "7");
  const auto r = call("/v1/generate", greedy_body().dump());
  const json reply = json::parse(r.body);
  EXPECT_EQ(reply["policy_version"], "7");
  const auto expected = testing::local_generate(*next, {testing::text_request("12+3=", 8, 0, 1)});
  ASSERT_EQ(reply["completions"][0]["token_ids"].size(), expected[0].samples[0].tokens.size());
  for (size_t t = 0; t < expected[0].samples[0].tokens.size(); ++t)
    EXPECT_EQ(reply["completions"][0]["token_ids"][t].get<int64_t>(),
              expected[0].samples[0].tokens[t]);
  EXPECT_EQ(update("7", dir.path() + "/next", sha).status, 200);  // a repeated push
  EXPECT_EQ(update("6", dir.path() + "/next", sha).status, 409);
  EXPECT_EQ(update("8", file, sha).status, 200);  // a safetensors file
  EXPECT_EQ(version(), "8");
}

TEST_F(RolloutServerTest, AFullQueueAnswers429AndEveryOtherRequestSucceeds) {
  auto server = testing::start_rollout_server(
      *policy_, "{max_batch: 1, max_queue: 1, max_samples_per_request: 1}", 40);
  std::atomic<int> ok{0}, busy{0}, other{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 32; ++c) {
    clients.emplace_back([&] {
      auto client = testing::client_for(server->port());
      const json body = {{"prompts", {"x"}},
                         {"sampling", {{"max_new_tokens", 90}, {"ignore_eos", true}}}};
      const int status = client->request("POST", "/v1/generate", body.dump()).status;
      ++(status == 200 ? ok : status == 429 ? busy : other);
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_GE(ok.load(), 1);
  EXPECT_GE(busy.load(), 1);
}

// Threads of this process, from /proc.
int process_threads() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

// Weight updates arrive on any of the I/O threads; loading one runs torch's parallel copies,
// which give the thread running them a team of OpenMP threads for its lifetime. Updates are
// loaded on a thread that ends with the load, so the process has no more threads after twenty
// of them than after the first.
TEST(RolloutServerThreads, WeightUpdatesLeaveNoThreadsBehind) {
  if (at::get_parallel_info().find("OpenMP") == std::string::npos)
    GTEST_SKIP() << "libtorch's parallel backend is not OpenMP: no teams per thread";
  const int threads_before = at::get_num_threads();
  at::set_num_threads(2);  // as `rudder serve` sets it on two cores
  struct Restore {
    int threads;
    ~Restore() { at::set_num_threads(threads); }
  } restore{threads_before};
  rudder::testing::TempDir dir;
  torch::manual_seed(1);
  // Wide enough (260 x 256 embeddings) that its copies are split over threads.
  const models::CausalLM wide(rudder::testing::tiny_llama(256, 1, 4, 96));
  models::save_hf_model(wide, dir.path() + "/wide");
  const std::string sha = core::sha256_file(dir.path() + "/wide/model.safetensors");
  auto server = testing::start_rollout_server(wide, "{}", 8);
  const auto push = [&](int version) {
    const json body = {
        {"version", std::to_string(version)}, {"path", dir.path() + "/wide"}, {"sha256", sha}};
    return testing::client_for(server->port())->request("POST", "/v1/weights", body.dump());
  };
  // A team's threads end a moment after the thread that led them: the count once it holds
  // still for 200 ms (or after 3 s).
  const auto settled = [] {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    int count = process_threads(), still = 0;
    while (still < 10 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      const int now = process_threads();
      still = now == count ? still + 1 : 0;
      count = now;
    }
    return count;
  };
  ASSERT_EQ(push(1).status, 200);
  const int after_first = settled();
  for (int version = 2; version <= 20; ++version) ASSERT_EQ(push(version).status, 200);
  EXPECT_LE(settled(), after_first);
}

// Guidance that fails while armed: a decoding step that throws.
class FailingGuidance : public rollout::LogitsProcessor {
 public:
  std::atomic<bool> armed{false};
  void process(at::Tensor& /*scores*/, const std::vector<rollout::RowView>& /*rows*/) override {
    if (armed.load()) throw std::runtime_error("guidance broke");
  }
};

// A failed engine step fails the requests it was decoding with a 500 naming the cause; the
// server stays ready and answers the next request.
TEST(RolloutServerFailures, AFailedStepFailsItsRequestsAndTheServerGoesOn) {
  const auto policy = testing::tiny_policy(3);
  auto guidance = std::make_shared<FailingGuidance>();
  auto server = testing::start_rollout_server(*policy, "{max_batch: 4}", 4, 1u << 20, {guidance});
  const auto call = [&](const std::string& path, const std::string& body) {
    return server->handle(post(path, body));
  };
  guidance->armed = true;
  const auto failed = call("/v1/generate", greedy_body().dump());
  EXPECT_EQ(failed.status, 500) << failed.body;
  EXPECT_NE(failed.body.find("guidance broke"), std::string::npos) << failed.body;
  guidance->armed = false;
  const auto next = call("/v1/generate", greedy_body().dump());
  EXPECT_EQ(next.status, 200) << next.body;
  core::HttpRequest ready;
  ready.method = "GET";
  ready.target = ready.path = "/readyz";
  EXPECT_EQ(server->handle(ready).status, 200);
}

}  // namespace
}  // namespace rudder::services
