// An on-policy batch source: each batch draws prompts in a seeded, resumable order, samples
// `samples_per_prompt` completions of each with the current policy, and scores them with a
// RewardModel (in process or remote; the source never knows which). Methods that learn from
// their own samples (PPO, GRPO, RLOO, CTRL) read the batch's rollouts.
//
// Randomness: on the CPU each rank samples with its own generator, seeded from (seed, rank) and
// saved in checkpoints (rank_state), so a resumed run samples exactly what the uninterrupted one
// did. On CUDA it samples with the device's default generator, which the trainer saves per rank.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>

#include "algorithms/batch_source.h"
#include "proto/rudder.pb.h"

namespace rudder::data {
class Tokenizer;
}
namespace rudder::models {
class CausalLM;
}
namespace rudder::rewards {
class RewardModel;
}

namespace rudder::algorithms {

/// How an on-policy source samples.
struct OnPolicyOptions {
  uint32_t samples_per_prompt = 1;  // completions per prompt (the group of GRPO/RLOO)
  SamplingParams sampling;          // temperature, top-k/top-p, max_new_tokens
  uint64_t seed = 0;                // seeds the prompt order and every rank's sampler
  bool shuffle = true;              // a new prompt order each epoch
  TokenizerConfig tokenizer;        // BOS as for training rows (data::tokenize_pair)
  DataConfig data;                  // max_prompt_length: longer prompts keep their end
};

/// Generates and scores a batch of samples per call.
class OnPolicySource : public BatchSource {
 public:
  OnPolicySource(std::shared_ptr<models::CausalLM> policy,
                 std::shared_ptr<const data::Tokenizer> tokenizer, std::vector<std::string> prompts,
                 std::shared_ptr<rewards::RewardModel> reward, OnPolicyOptions options);

  /// Prompts per epoch (training.global_batch_size counts prompts for this source).
  uint64_t epoch_size() const override { return prompts_.size(); }
  /// Prompts split evenly over ranks; each rank's samples split evenly into micro-batches.
  void check_batching(uint64_t global_batch, uint64_t micro_batch, int world_size) const override;
  Batch next(uint64_t global_batch, int rank, int world_size) override;
  data::SamplerPosition position() const override { return sampler_.position(); }
  void set_position(data::SamplerPosition position) override { sampler_.set_position(position); }
  /// {"sampler": this rank's generator state}.
  models::TensorMap rank_state() const override;
  void load_rank_state(const models::TensorMap& state, const std::string& source) override;

 private:
  void seed_for(int rank);

  std::shared_ptr<models::CausalLM> policy_;
  std::shared_ptr<const data::Tokenizer> tokenizer_;
  std::vector<std::string> prompts_;
  std::shared_ptr<rewards::RewardModel> reward_;
  OnPolicyOptions options_;
  data::EpochSampler sampler_;
  mutable at::Generator generator_;  // mutable: reading its state locks its mutex
  bool seeded_ = false;
};

}  // namespace rudder::algorithms
