// The real `rudder serve rollout` on 127.0.0.1:0: bad input over sockets is a 4xx and the next
// request succeeds; RemoteEngine gives the local engine's tokens (greedy and seeded) and carries
// on when one of two servers is killed; a weight update under load loses no request, answers
// before it carry the old version and after it the new one; a wrong SHA-256 is refused.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <regex>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "core/error.h"
#include "models/hf_io.h"
#include "rollout/generate_protocol.h"
#include "rollout/remote_engine.h"
#include "tests/services/reward_fixtures.h"
#include "tests/services/rollout_fixtures.h"
#include "tests/support/test_support.h"

namespace rudder::services {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using rudder::testing::TempDir;

struct ServerProcess {
  int pid = -1;
  uint16_t port = 0;
  std::string err;
};

ServerProcess spawn_rollout(const TempDir& dir, const std::string& config,
                            const std::string& name) {
  ServerProcess p;
  const std::string out = dir.path() + "/" + name + ".out";
  p.err = dir.path() + "/" + name + ".err";
  p.pid = rudder::testing::spawn_process(
      {rudder::testing::rudder_binary(), "serve", "rollout", config, "--set", "server.port=0"}, out,
      p.err);
  const std::regex listening("listening on 127\\.0\\.0\\.1:([0-9]+)");
  const auto until = std::chrono::steady_clock::now() + 60s;
  std::smatch m;
  while (std::chrono::steady_clock::now() < until) {
    const std::string text = rudder::testing::read_file(out);
    if (std::regex_search(text, m, listening)) {
      p.port = static_cast<uint16_t>(std::stoi(m[1]));
      return p;
    }
    std::this_thread::sleep_for(20ms);
  }
  return p;
}

std::string endpoint(const ServerProcess& p) { return "127.0.0.1:" + std::to_string(p.port); }

class RolloutServerProcesses : public ::testing::Test {
 protected:
  void SetUp() override {
    policy_ = testing::tiny_policy(11);
    models::save_hf_model(*policy_, dir_.path() + "/policy");
    config_ = dir_.write("serve.yaml", "name: serve_rollout_test\nmodel: {path: " + dir_.path() +
                                           "/policy}\nserver: {threads: 24, max_body_bytes: "
                                           "65536}\nrollout_server: {max_batch: 8, "
                                           "max_new_tokens_limit: 64}\n");
  }
  void TearDown() override {
    for (int pid : pids_) {
      kill(pid, SIGKILL);
      rudder::testing::wait_process(pid);
    }
  }
  ServerProcess spawn(const std::string& name) {
    ServerProcess p = spawn_rollout(dir_, config_, name);
    if (p.pid > 0) pids_.push_back(p.pid);
    return p;
  }
  rollout::RemoteEngine remote(const std::vector<ServerProcess>& servers) const {
    rollout::RemoteEngineOptions o;
    for (const auto& s : servers) o.endpoints.push_back(endpoint(s));
    o.request_timeout = 20s;
    o.endpoint_cooldown = 60s;
    return rollout::RemoteEngine(o);
  }

  TempDir dir_;
  std::shared_ptr<models::CausalLM> policy_;
  std::string config_;
  std::vector<int> pids_;
};

TEST_F(RolloutServerProcesses, BadInputIsA4xxAndTheNextRequestSucceeds) {
  const ServerProcess a = spawn("a");
  ASSERT_NE(a.port, 0) << rudder::testing::read_file(a.err);
  auto client = testing::client_for(a.port);
  const std::string good = R"({"prompts": ["hi"], "sampling": {"max_new_tokens": 4}})";
  const std::vector<std::pair<std::string, int>> cases = {
      {"{\"prompts\": [", 400},
      {R"({"prompts": ["hi"], "bogus": 1})", 400},
      {R"({"prompts": ["hi"], "numSamples": 100000})", 413},
      {R"({"prompts": ["hi"], "sampling": {"maxNewTokens": 1000000}})", 400},
      {"{\"prompts\": [\"" + std::string(70000, 'a') + "\"]}", 413},
  };
  for (const auto& [body, status] : cases) {
    const auto r = client->request("POST", "/v1/generate", body);
    EXPECT_EQ(r.status, status) << body.substr(0, 80) << " -> " << r.body;
    const auto next = testing::client_for(a.port)->request("POST", "/v1/generate", good);
    EXPECT_EQ(next.status, 200) << next.body;
  }
  const auto metrics = client->request("GET", "/metrics").body;
  for (const char* name : {"rudder_rollout_tokens_total", "rudder_rollout_batch_occupancy",
                           "rudder_rollout_queue_depth", "rudder_rollout_time_to_first_token",
                           "rudder_rollout_inter_token_seconds", "rudder_rollout_policy_version"})
    EXPECT_NE(metrics.find(name), std::string::npos) << name;
}

TEST_F(RolloutServerProcesses, RemoteMatchesLocalAndAKilledServerIsFailedOver) {
  const ServerProcess a = spawn("a"), b = spawn("b");
  ASSERT_NE(a.port, 0) << rudder::testing::read_file(a.err);
  ASSERT_NE(b.port, 0) << rudder::testing::read_file(b.err);
  std::vector<rollout::GenerateInput> requests = {testing::text_request("12+3=", 12, 0, 1, 1),
                                                  testing::text_request("abc", 12, 0, 1, 1),
                                                  testing::text_request("seeded", 12, 0.9, 42, 3),
                                                  testing::text_request("other", 10, 1.0, 7, 2)};
  requests.back().prompt = {5, 6, 7};  // a token-id prompt
  const auto expected = testing::local_generate(*policy_, requests);
  auto engine = remote({a, b});
  for (int call = 0; call < 12; ++call) {
    if (call == 4) kill(b.pid, SIGKILL);
    const auto got = engine.generate(requests);
    ASSERT_EQ(got.size(), expected.size());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].samples.size(), expected[i].samples.size());
      for (size_t s = 0; s < got[i].samples.size(); ++s) {
        EXPECT_EQ(got[i].samples[s].tokens, expected[i].samples[s].tokens) << call << "/" << i;
        EXPECT_EQ(got[i].samples[s].text, rollout::valid_utf8(expected[i].samples[s].text));
      }
      EXPECT_EQ(got[i].policy_version, "0");
    }
  }
  EXPECT_GE(engine.failovers(), 1);
  EXPECT_THROW(engine.score({}), core::InvalidArgument);
}

TEST_F(RolloutServerProcesses, AWeightUpdateUnderLoadLosesNoRequest) {
  const ServerProcess a = spawn("a");
  ASSERT_NE(a.port, 0) << rudder::testing::read_file(a.err);
  models::save_hf_model(*testing::tiny_policy(12), dir_.path() + "/next");
  auto engine = remote({a});
  // A wrong SHA-256 is refused and the old version still serves.
  {
    auto client = testing::client_for(a.port);
    const json bad = {
        {"version", "5"}, {"path", dir_.path() + "/next"}, {"sha256", std::string(64, '0')}};
    const auto r = client->request("POST", "/v1/weights", bad.dump());
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find("SHA-256"), std::string::npos) << r.body;
  }
  using Clock = std::chrono::steady_clock;
  struct Answer {
    Clock::time_point sent, received;
    std::string version;
  };
  std::mutex mutex;
  std::vector<Answer> answers;
  std::atomic<int> errors{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      auto mine = remote({a});
      while (!stop.load()) {
        const auto sent = Clock::now();
        try {
          const auto out =
              mine.generate({testing::text_request("c" + std::to_string(c), 16, 1, 0)});
          std::lock_guard<std::mutex> lock(mutex);
          answers.push_back({sent, Clock::now(), out[0].policy_version});
        } catch (const std::exception&) {
          ++errors;
        }
      }
    });
  }
  std::this_thread::sleep_for(1s);
  const auto push_start = Clock::now();
  const auto pushed = engine.push_weights(dir_.path() + "/next", "5");
  const auto push_end = Clock::now();
  std::this_thread::sleep_for(1s);
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(pushed.updated.size(), 1u);
  EXPECT_EQ(errors.load(), 0);
  int before = 0, after = 0;
  for (const auto& ans : answers) {
    if (ans.received < push_start) {
      EXPECT_EQ(ans.version, "0");
      ++before;
    }
    if (ans.sent > push_end) {
      EXPECT_EQ(ans.version, "5");
      ++after;
    }
  }
  EXPECT_GT(before, 0);
  EXPECT_GT(after, 0);
}

TEST_F(RolloutServerProcesses, AMissingPolicyIsNamed) {
  const std::string missing = dir_.path() + "/no-such-policy";
  const auto run =
      rudder::testing::run_process({rudder::testing::rudder_binary(), "serve", "rollout", config_,
                                    "--set", "model.path=" + missing});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find("policy directory '" + missing + "' does not exist"), std::string::npos)
      << run.err;
}

}  // namespace
}  // namespace rudder::services
