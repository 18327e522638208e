#include "tests/services/rollout_fixtures.h"

#include <torch/torch.h>

#include "data/tokenizer.h"
#include "rollout/local_engine.h"
#include "tests/services/reward_fixtures.h"
#include "tests/support/tiny_models.h"

namespace rudder::services::testing {

std::shared_ptr<models::CausalLM> tiny_policy(uint64_t seed) {
  torch::manual_seed(seed);
  auto model = std::make_shared<models::CausalLM>(rudder::testing::tiny_llama(32, 2, 2, 96));
  model->eval();
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.mul_(6.0);
  return model;
}

std::unique_ptr<RolloutServer> start_rollout_server(
    const models::CausalLM& model, const std::string& rollout_server_yaml, int threads,
    size_t max_body_bytes, std::vector<std::shared_ptr<rollout::LogitsProcessor>> guidance) {
  const ExperimentConfig config = config_from_yaml("rollout_server: " + rollout_server_yaml);
  core::HttpServerOptions http;
  http.host = "127.0.0.1";
  http.port = 0;
  http.threads = threads;
  http.max_body_bytes = max_body_bytes;
  auto server = std::make_unique<RolloutServer>(config.rollout_server(), http);
  server->serve(model, data::make_byte_tokenizer(), std::move(guidance));
  server->start();
  return server;
}

std::vector<rollout::GenerateOutput> local_generate(
    const models::CausalLM& model, const std::vector<rollout::GenerateInput>& requests) {
  rollout::LocalEngineOptions o;
  o.max_batch = 8;
  std::shared_ptr<const data::Tokenizer> tokenizer = data::make_byte_tokenizer();
  o.eos_id = tokenizer->eos_id();
  o.tokenizer = tokenizer;
  rollout::LocalEngine engine(model, o);
  return engine.generate(requests);
}

rollout::GenerateInput text_request(const std::string& prompt, uint32_t max_new, double temperature,
                                    uint64_t seed, uint32_t n) {
  rollout::GenerateInput in;
  in.prompt_text = prompt;
  in.sampling.set_max_new_tokens(max_new);
  in.sampling.set_temperature(temperature);
  in.sampling.set_top_p(1.0);
  in.sampling.set_repetition_penalty(1.0);
  in.sampling.set_seed(seed);
  in.n = n;
  return in;
}

}  // namespace rudder::services::testing
