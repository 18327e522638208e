#include "tests/services/reward_fixtures.h"

#include <torch/torch.h>

#include "core/config.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "tests/support/tiny_models.h"

namespace rudder::services::testing {

std::shared_ptr<rewards::ScalarRewardModel> tiny_reward_model(uint64_t seed) {
  torch::manual_seed(seed);
  auto net = std::make_shared<rewards::ScalarRewardNet>(
      std::make_shared<models::CausalLM>(rudder::testing::tiny_rm_spec()));
  TokenizerConfig tc;
  tc.set_add_eos(true);
  DataConfig dc;
  dc.set_max_length(64);
  dc.set_max_prompt_length(32);
  return std::make_shared<rewards::ScalarRewardModel>(net, data::make_byte_tokenizer(), tc, dc,
                                                      rewards::RewardNormalization{});
}

ExperimentConfig config_from_yaml(const std::string& yaml) {
  ExperimentConfig config;
  core::parse_config_text(yaml, "test", {}, &config);
  return config;
}

std::vector<double> FakeRewardModel::score(const std::vector<std::string>& prompts,
                                           const std::vector<std::string>& responses) {
  std::unique_lock<std::mutex> lock(mutex_);
  sizes_.push_back(prompts.size());
  if (closed_) {
    entered_ = true;
    cv_.notify_all();
    cv_.wait(lock, [this] { return !closed_ || passes_ > 0; });
    if (closed_) --passes_;
  }
  std::vector<double> out;
  for (const auto& r : responses) out.push_back(static_cast<double>(r.size()));
  return out;
}

void FakeRewardModel::close() {
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = true;
  entered_ = false;
  passes_ = 0;
}

void FakeRewardModel::open() {
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = false;
  cv_.notify_all();
}

void FakeRewardModel::pass_one() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++passes_;
  entered_ = false;  // wait_entered() now waits for the next call
  cv_.notify_all();
}

void FakeRewardModel::wait_entered() {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [this] { return entered_; });
}

std::vector<size_t> FakeRewardModel::batch_sizes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return sizes_;
}

std::unique_ptr<RewardServer> start_server(std::shared_ptr<rewards::RewardModel> model,
                                           const std::string& reward_server_yaml, int threads,
                                           size_t max_body_bytes) {
  const ExperimentConfig config = config_from_yaml("reward_server: " + reward_server_yaml);
  core::HttpServerOptions http;
  http.host = "127.0.0.1";
  http.port = 0;
  http.threads = threads;
  http.max_body_bytes = max_body_bytes;
  auto server = std::make_unique<RewardServer>(config.reward_server(), http);
  server->start();
  server->serve(std::move(model));
  return server;
}

std::unique_ptr<core::HttpClient> client_for(uint16_t port) {
  core::HttpClientOptions o;
  o.port = port;
  o.max_retries = 0;
  return std::make_unique<core::HttpClient>(o);
}

}  // namespace rudder::services::testing
