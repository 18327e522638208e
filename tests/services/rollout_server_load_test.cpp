// 64 concurrent clients for 10 s against one rollout server, with two weight updates pushed
// mid-run: every request is answered 200 with its completions, or 429 when the queue is full;
// nothing else; each reply names a version that was served while it was in flight, and a push
// with a wrong SHA-256 is refused while the old version still serves. Labelled `load`; it
// asserts correctness, not speed.
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "core/proto_http.h"
#include "models/causal_lm.h"
#include "models/hf_io.h"
#include "tests/services/reward_fixtures.h"
#include "tests/services/rollout_fixtures.h"
#include "tests/support/test_support.h"

namespace rudder::services {
namespace {

TEST(RolloutServerLoad, SixtyFourClientsForTenSecondsWithWeightUpdatesWithoutErrors) {
  constexpr int kClients = 64;
  const auto duration = std::chrono::seconds(10);
  const auto policy = testing::tiny_policy(5);
  rudder::testing::TempDir dir;
  models::save_hf_model(*testing::tiny_policy(6), dir.path() + "/next");
  const std::string sha = core::sha256_file(dir.path() + "/next/model.safetensors");
  auto server = testing::start_rollout_server(
      *policy, "{max_batch: 32, max_queue: 64, max_samples_per_request: 4}", kClients + 4);
  std::atomic<int64_t> ok{0}, busy{0}, errors{0};
  // Versions a reply may name: those served at some moment between its request and its reply.
  std::atomic<int> served_low{0}, served_high{0};
  std::vector<std::string> failures;
  std::mutex failures_mutex;
  const auto stop_at = std::chrono::steady_clock::now() + duration;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto client = testing::client_for(server->port());
      for (int i = 0; std::chrono::steady_clock::now() < stop_at; ++i) {
        GenerateRequest request;
        const int prompts = 1 + (c + i) % 2;
        for (int k = 0; k < prompts; ++k) request.add_prompts("client " + std::to_string(c));
        request.set_num_samples(1 + i % 2);
        request.mutable_sampling()->set_max_new_tokens(1 + (i * 7 + c) % 16);
        request.mutable_sampling()->set_temperature(1.0);
        const std::string type(core::media_type(core::Wire::kProtobuf));
        std::string problem;
        try {
          const int low = served_low.load();
          const auto r =
              client->request("POST", "/v1/generate",
                              core::encode_message(request, core::Wire::kProtobuf), type, type);
          GenerateResponse reply;
          if (r.status == 200) {
            core::decode_message(r.body, core::Wire::kProtobuf, &reply);
            const int high = served_high.load();
            const int version = std::stoi(reply.policy_version());
            if (reply.completions_size() != prompts * static_cast<int>(request.num_samples()))
              problem = "wrong completion count";
            else if (version < low || version > high)
              problem = "version " + reply.policy_version() + " outside " + std::to_string(low) +
                        ".." + std::to_string(high);
          } else if (r.status == 429) {
            ++busy;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            continue;
          } else {
            problem = "HTTP " + std::to_string(r.status) + ": " + r.body;
          }
        } catch (const std::exception& e) {
          problem = e.what();
        }
        if (problem.empty()) {
          ++ok;
          continue;
        }
        ++errors;
        std::lock_guard<std::mutex> lock(failures_mutex);
        if (failures.size() < 5) failures.push_back(problem);
      }
    });
  }
  // Two updates under load, and between them one with a wrong SHA-256.
  auto admin = testing::client_for(server->port());
  const auto push = [&](int version, const std::string& digest) {
    const std::string body = "{\"version\": \"" + std::to_string(version) + "\", \"path\": \"" +
                             dir.path() + "/next\", \"sha256\": \"" + digest + "\"}";
    return admin->request("POST", "/v1/weights", body);
  };
  for (const int version : {1, 2}) {
    std::this_thread::sleep_for(duration / 3);
    served_high = version;
    const auto r = push(version, sha);
    EXPECT_EQ(r.status, 200) << r.body;
    served_low = version;
    if (version == 1) {
      const auto bad = push(2, std::string(64, '0'));
      EXPECT_EQ(bad.status, 400) << bad.body;
      const std::string probe = R"({"prompts": ["probe"], "sampling": {"max_new_tokens": 1}})";
      auto r = admin->request("POST", "/v1/generate", probe);
      while (r.status == 429) r = admin->request("POST", "/v1/generate", probe);
      ASSERT_EQ(r.status, 200) << r.body;
      EXPECT_EQ(nlohmann::json::parse(r.body).at("policy_version"), "1") << r.body;
    }
  }
  for (auto& t : clients) t.join();
  std::string first_failures;
  for (const auto& f : failures) first_failures += f + "\n";
  EXPECT_EQ(errors.load(), 0) << first_failures;
  EXPECT_GT(ok.load(), kClients);
  std::printf("load: %lld requests answered, %lld answered 429, in %lld s\n",
              static_cast<long long>(ok.load()), static_cast<long long>(busy.load()),
              static_cast<long long>(duration.count()));
}

}  // namespace
}  // namespace rudder::services
