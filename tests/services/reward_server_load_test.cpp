// 64 concurrent clients for 10 s against one reward server: every request answered 200 with
// the right number of rewards. Labelled `load`; it asserts correctness, not speed.
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/proto_http.h"
#include "services/reward_server.h"
#include "tests/services/reward_fixtures.h"

namespace rudder::services {
namespace {

TEST(RewardServerLoad, SixtyFourClientsForTenSecondsWithoutErrors) {
  constexpr int kClients = 64;
  const auto duration = std::chrono::seconds(10);
  auto server = testing::start_server(testing::tiny_reward_model(5),
                                      "{max_batch_size: 32, max_queue_delay_ms: 5}", kClients + 4);
  std::atomic<int64_t> ok{0}, errors{0};
  std::vector<std::string> failures;
  std::mutex failures_mutex;
  const auto stop_at = std::chrono::steady_clock::now() + duration;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      core::HttpClientOptions o;
      o.port = server->port();
      o.max_retries = 0;
      core::HttpClient client(o);
      for (int i = 0; std::chrono::steady_clock::now() < stop_at; ++i) {
        ScoreRequest request;
        const int items = 1 + (c + i) % 4;
        for (int k = 0; k < items; ++k) {
          auto* item = request.add_items();
          item->set_prompt("client " + std::to_string(c) + ":");
          item->set_response(std::string(static_cast<size_t>(1 + (i * 7 + k) % 40), 'a' + k));
        }
        try {
          ScoreResponse reply;
          client.call("/v1/score", request, &reply, core::Wire::kProtobuf);
          if (reply.rewards_size() != items) throw std::runtime_error("wrong reward count");
          ++ok;
        } catch (const std::exception& e) {
          ++errors;
          std::lock_guard<std::mutex> lock(failures_mutex);
          if (failures.size() < 5) failures.push_back(e.what());
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  std::string first_failures;
  for (const auto& f : failures) first_failures += f + "\n";
  EXPECT_EQ(errors.load(), 0) << first_failures;
  EXPECT_GT(ok.load(), kClients);  // every client got answers
  std::printf("load: %lld requests answered in %lld s by one worker\n",
              static_cast<long long>(ok.load()), static_cast<long long>(duration.count()));
}

}  // namespace
}  // namespace rudder::services
