// The real `rudder` binary: two `rudder serve reward` processes on 127.0.0.1:0 and `rudder
// score`. Scores agree in process, through RemoteRewardModel, /v1/score and /get_reward; when one
// server is killed mid-run the client carries on with the other.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/http_client.h"
#include "rewards/factory.h"
#include "rewards/remote_reward_model.h"
#include "tests/services/reward_fixtures.h"
#include "tests/support/test_support.h"

namespace rudder::services {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using rudder::testing::TempDir;

// A `rudder serve reward` process and the port it printed.
struct ServerProcess {
  int pid = -1;
  uint16_t port = 0;
  std::string out, err;
};

ServerProcess spawn_server(const TempDir& dir, const std::string& config, const std::string& name) {
  ServerProcess p;
  p.out = dir.path() + "/" + name + ".out";
  p.err = dir.path() + "/" + name + ".err";
  p.pid = rudder::testing::spawn_process(
      {rudder::testing::rudder_binary(), "serve", "reward", config, "--set", "server.port=0"},
      p.out, p.err);
  const std::regex listening("listening on 127\\.0\\.0\\.1:([0-9]+)");
  const auto until = std::chrono::steady_clock::now() + 60s;
  std::smatch m;
  while (std::chrono::steady_clock::now() < until) {
    const std::string text = rudder::testing::read_file(p.out);
    if (std::regex_search(text, m, listening)) {
      p.port = static_cast<uint16_t>(std::stoi(m[1]));
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  if (p.port == 0) return p;
  auto client = testing::client_for(p.port);
  while (std::chrono::steady_clock::now() < until) {
    try {
      if (client->request("GET", "/readyz").status == 200) return p;
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(20ms);
  }
  p.port = 0;
  return p;
}

class RewardServerProcesses : public ::testing::Test {
 protected:
  void SetUp() override {
    model_dir_ = dir_.path() + "/rm";
    testing::tiny_reward_model(21)->save(model_dir_);
    config_ = dir_.write("serve.yaml",
                         "name: serve_test\n"
                         "data: {max_length: 64, max_prompt_length: 32}\n"
                         "reward: {model_path: " +
                             model_dir_ +
                             "}\n"
                             "server: {threads: 8}\n"
                             "reward_server: {max_batch_size: 8}\n");
    for (int i = 0; i < 24; ++i) {
      prompts_.push_back("prompt " + std::to_string(i) + ": ");
      responses_.push_back(std::string(static_cast<size_t>(1 + i % 9), 'a' + i % 26) + " end");
    }
    model_ =
        rewards::make_reward_model(testing::config_from_yaml(rudder::testing::read_file(config_)));
    expected_ = model_->score(prompts_, responses_);
  }

  TempDir dir_;
  std::string model_dir_, config_;
  std::vector<std::string> prompts_, responses_;
  std::shared_ptr<rewards::RewardModel> model_;
  std::vector<double> expected_;
};

TEST_F(RewardServerProcesses, EveryPathScoresAlikeAndAKilledServerIsFailedOver) {
  ServerProcess a = spawn_server(dir_, config_, "a");
  ServerProcess b = spawn_server(dir_, config_, "b");
  ASSERT_NE(a.port, 0) << rudder::testing::read_file(a.err);
  ASSERT_NE(b.port, 0) << rudder::testing::read_file(b.err);

  auto client = testing::client_for(a.port);
  json get_reward = {{"query", json::array()}, {"prompts", prompts_}};
  for (size_t i = 0; i < prompts_.size(); ++i)
    get_reward["query"].push_back(prompts_[i] + responses_[i]);
  const core::HttpResponse r = client->request("POST", "/get_reward", get_reward.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  json score_body = {{"items", json::array()}};
  for (size_t i = 0; i < prompts_.size(); ++i)
    score_body["items"].push_back({{"prompt", prompts_[i]}, {"response", responses_[i]}});
  const core::HttpResponse s = client->request("POST", "/v1/score", score_body.dump());
  ASSERT_EQ(s.status, 200) << s.body;
  for (size_t i = 0; i < prompts_.size(); ++i) {
    EXPECT_NEAR(json::parse(r.body)["rewards"][i].get<double>(), expected_[i], 1e-5) << i;
    EXPECT_NEAR(json::parse(s.body)["rewards"][i].get<double>(), expected_[i], 1e-5) << i;
  }

  rewards::RemoteRewardOptions o;
  o.endpoints = {"127.0.0.1:" + std::to_string(a.port), "127.0.0.1:" + std::to_string(b.port)};
  o.max_items_per_request = 4;
  o.request_timeout = 20s;
  o.endpoint_cooldown = 60s;
  rewards::RemoteRewardModel remote(o);
  std::atomic<int> calls{0};
  std::thread killer([&] {
    while (calls.load() < 5) std::this_thread::sleep_for(1ms);
    kill(b.pid, SIGKILL);
  });
  for (int call = 0; call < 30; ++call) {
    const std::vector<double> got = remote.score(prompts_, responses_);  // 6 requests each
    ASSERT_EQ(got.size(), expected_.size());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], expected_[i], 1e-5) << call;
    ++calls;
  }
  killer.join();
  EXPECT_GE(remote.failovers(), 1);
  EXPECT_EQ(rudder::testing::wait_process(b.pid).signal, SIGKILL);

  kill(a.pid, SIGTERM);
  const auto done = rudder::testing::wait_process(a.pid);
  EXPECT_EQ(done.exit_code, 0) << rudder::testing::read_file(a.err);
}

TEST_F(RewardServerProcesses, ScoreCommandWritesEveryLineAtomically) {
  std::string lines;
  for (size_t i = 0; i < 6; ++i) {
    json line = {{"prompt", prompts_[i]}};
    if (i % 2 == 0) {
      line["response"] = responses_[i];
    } else {
      line["chosen"] = responses_[i];
      line["rejected"] = responses_[i + 1];
    }
    lines += line.dump() + "\n";
  }
  const std::string in = dir_.write("pairs.jsonl", lines);
  const std::string out = dir_.path() + "/scores.jsonl";
  const auto run = rudder::testing::run_process(
      {rudder::testing::rudder_binary(), "score", config_, "--in", in, "--out", out});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("scored 6 records (9 pairs)"), std::string::npos) << run.out;
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
  std::ifstream file(out);
  std::string text;
  for (size_t i = 0; i < 6; ++i) {
    ASSERT_TRUE(std::getline(file, text)) << i;
    const json line = json::parse(text);
    if (i % 2 == 0) {
      EXPECT_NEAR(line["reward"].get<double>(), expected_[i], 1e-5);
    } else {
      const double rejected = model_->score({prompts_[i]}, {responses_[i + 1]})[0];
      EXPECT_NEAR(line["chosen_reward"].get<double>(), expected_[i], 1e-5);
      EXPECT_NEAR(line["rejected_reward"].get<double>(), rejected, 1e-5);
      EXPECT_NEAR(line["margin"].get<double>(), expected_[i] - rejected, 1e-5);
    }
  }
}

TEST_F(RewardServerProcesses, AMissingModelIsNamed) {
  const std::string missing = dir_.path() + "/no-such-model";
  for (const char* command : {"serve", "score"}) {
    std::vector<std::string> argv = {rudder::testing::rudder_binary(), command};
    if (std::string(command) == "serve") argv.push_back("reward");
    argv.insert(argv.end(),
                {config_, "--set", "reward.model_path=" + missing, "--set", "server.port=0"});
    if (std::string(command) == "score") argv.insert(argv.end(), {"--in", "x", "--out", "y"});
    const auto run = rudder::testing::run_process(argv);
    EXPECT_EQ(run.exit_code, 1) << command;
    EXPECT_NE(run.err.find("reward model directory '" + missing + "' does not exist"),
              std::string::npos)
        << command << ": " << run.err;
  }
}

}  // namespace
}  // namespace rudder::services
