// The trainer's checkpoint hook: with rollout.endpoints set, each checkpoint's policy reaches a
// rollout server on loopback as version <step>, and the server then serves those weights.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/distributed.h"
#include "data/tokenizer.h"
#include "models/factory.h"
#include "models/hf_io.h"
#include "services/rollout_server.h"
#include "tests/services/reward_fixtures.h"
#include "tests/services/rollout_fixtures.h"
#include "tests/support/test_support.h"
#include "trainer/experiment.h"

namespace rudder::services {
namespace {

TEST(RolloutPush, EachCheckpointIsPushedWithItsStepAsVersion) {
  rudder::testing::TempDir dir;
  const std::string yaml =
      "name: push\noutput_dir: " + dir.path() +
      "\nmodel: {hidden_size: 32, num_layers: 1, num_heads: 2, num_kv_heads: 1, "
      "intermediate_size: 48, max_position_embeddings: 96}\n"
      "data: {synthetic: {tasks: [mixed], num_train: 16, num_eval: 4}, max_length: 48, "
      "max_prompt_length: 24}\nsft: {}\n"
      "training: {max_steps: 2, micro_batch_size: 4, global_batch_size: 4}\n"
      "checkpoint: {every_steps: 1}\n";
  ExperimentConfig config = testing::config_from_yaml(yaml);
  const auto served = models::make_model(config.model(), data::make_byte_tokenizer()->vocab_size());
  auto server = testing::start_rollout_server(*served);
  config.mutable_rollout()->add_endpoints("127.0.0.1:" + std::to_string(server->port()));
  const auto group = core::ProcessGroup::single();
  const auto result = trainer::run_experiment(config, *group, {});
  ASSERT_EQ(result.steps, 2u);

  core::HttpRequest r;
  r.method = "POST";
  r.target = r.path = "/v1/generate";
  r.body = R"({"prompts": ["1+1="], "sampling": {"max_new_tokens": 6}})";
  const auto reply = nlohmann::json::parse(server->handle(r).body);
  EXPECT_EQ(reply["policy_version"], "2");
  const auto trained = models::load_hf_model(result.last_checkpoint + "/policy");
  const auto expected = testing::local_generate(*trained, {testing::text_request("1+1=", 6, 0, 1)});
  std::vector<int64_t> got;
  for (const auto& t : reply["completions"][0]["token_ids"]) got.push_back(t.get<int64_t>());
  EXPECT_EQ(got, expected[0].samples[0].tokens);
}

}  // namespace
}  // namespace rudder::services
