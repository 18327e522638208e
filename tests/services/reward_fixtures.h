// Helpers of the reward server tests: tiny seeded models, a controllable fake model, configs
// with the schema's defaults, and a server on 127.0.0.1.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/http_client.h"
#include "proto/rudder.pb.h"
#include "rewards/reward_model.h"
#include "rewards/scalar_reward_model.h"
#include "services/reward_server.h"

namespace rudder::services::testing {

/// A scalar reward model with a 1-layer, 32-wide Llama drawn from `seed` (byte tokenizer,
/// max_length 64, max_prompt_length 32).
std::shared_ptr<rewards::ScalarRewardModel> tiny_reward_model(uint64_t seed);

/// The experiment config of `yaml` with every absent key at the schema's default.
ExperimentConfig config_from_yaml(const std::string& yaml);

/// Scores a pair as the length of its response; can hold the worker at a gate.
class FakeRewardModel : public rewards::RewardModel {
 public:
  std::vector<double> score(const std::vector<std::string>& prompts,
                            const std::vector<std::string>& responses) override;
  int64_t count_tokens(const std::string& prompt, const std::string& response) const override {
    if (count_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(count_delay_ms));
    return static_cast<int64_t>(prompt.size() + response.size());
  }
  /// How long count_tokens() takes, in milliseconds (0: no time).
  std::atomic<int> count_delay_ms{0};
  std::string version() const override { return "fake"; }
  std::vector<std::string> pad_and_eos_texts() const override { return {"<pad>", "</s>"}; }

  /// From now on score() waits until open() (the first waiting call sets `entered`).
  void close();
  /// Lets every waiting and later score() call through.
  void open();
  /// Lets the call waiting at the closed gate (or the next to come) through; the gate stays
  /// closed for the one after it.
  void pass_one();
  /// Blocks until a score() call is waiting at the closed gate.
  void wait_entered();
  /// The size of every batch scored so far.
  std::vector<size_t> batch_sizes() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool closed_ = false;
  bool entered_ = false;
  int passes_ = 0;
  std::vector<size_t> sizes_;
};

/// A RewardServer on 127.0.0.1 (a free port, `threads` I/O threads) serving `model`.
std::unique_ptr<RewardServer> start_server(std::shared_ptr<rewards::RewardModel> model,
                                           const std::string& reward_server_yaml = "{}",
                                           int threads = 16, size_t max_body_bytes = 8u << 20);

/// A client of `port` that does not retry.
std::unique_ptr<core::HttpClient> client_for(uint16_t port);

}  // namespace rudder::services::testing
