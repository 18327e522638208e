// The local rollout engine: continuous batching over a models::Decoder. Requests wait in a
// queue; each step admits waiting samples into free slots (the n samples of a prompt share one
// prefill, forked by copying its cache), samples one token for every running sample through
// the logits processor chain, retires finished samples (the last running sample moves into the
// freed slot, so the live ones stay in the lowest slots) and decodes one token for the rest.
// A sample's tokens depend on its own request's seed alone, whatever shares the batch.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "rollout/engine.h"
#include "rollout/logits_processors.h"

namespace rudder::data {
class Tokenizer;
}
namespace rudder::models {
class CausalLM;
class Decoder;
class DecoderWeights;
}  // namespace rudder::models

namespace rudder::rollout {

/// Options of a LocalEngine.
struct LocalEngineOptions {
  // Samples decoded together (the decoder's slots); > 0.
  int64_t max_batch = 32;
  // Longest sequence (prompt + completion) a slot holds; 0: the model's positions.
  int64_t max_length = 0;
  // Prompt tokens prefilled together in one pass (at least one prompt always is); > 0.
  int64_t max_prefill_tokens = 4096;
  // The end-of-sequence token; < 0: none.
  int64_t eos_id = -1;
  // Encodes text prompts, decodes completions and finds stop strings; may be null (then
  // prompts must be ids, and stop strings are refused).
  std::shared_ptr<const data::Tokenizer> tokenizer;
  // Seeds the generator that seeds requests without a seed of their own.
  uint64_t seed = 0;
  // Guidance processors (GenARM, GeDi), applied after the penalties and before temperature.
  std::vector<std::shared_ptr<LogitsProcessor>> guidance;
};

/// Continuous-batching generation with a model's weights in process. Not thread-safe: one
/// thread calls every member (the rollout server's worker owns it).
class LocalEngine : public RolloutEngine {
 public:
  /// Snapshots `model`'s weights (models::DecoderWeights) as `version`.
  LocalEngine(const models::CausalLM& model, LocalEngineOptions options, std::string version = "0");
  ~LocalEngine() override;

  /// Runs until every request is done. If decoding throws, every request of the call is
  /// dropped and the engine is left idle and usable.
  std::vector<GenerateOutput> generate(const std::vector<GenerateInput>& requests) override;
  std::vector<std::vector<float>> score(const std::vector<ScoreInput>& inputs) override;
  std::string policy_version() const override { return version_; }

  /// Called on the stepping thread when every sample of a request has finished.
  using Done = std::function<void(GenerateOutput)>;
  /// Asked on the stepping thread, at every step while the request is in the engine, whether
  /// its caller has given up on it; cheap, and must not throw.
  using Cancelled = std::function<bool()>;
  /// Validates and queues a request (throws InvalidArgument naming the problem; nothing is
  /// queued then). Once a step finds `cancelled` (when given) true, the request leaves the
  /// engine in that step: its waiting samples are dropped, its running ones free their slots,
  /// and `done` is not called (a request that finished in an earlier step has had its `done`).
  void submit(GenerateInput request, Done done, Cancelled cancelled = {});
  /// Drops cancelled requests, admits waiting samples into free slots, samples one token for
  /// each running sample and decodes the next step. Does nothing when idle. If it throws, every
  /// request is dropped without a callback and the engine is left idle and usable.
  void step();
  /// Requests queued or running.
  bool busy() const { return !waiting_.empty() || !rows_.empty(); }
  /// Samples running now, and requests waiting for a slot.
  int64_t running() const { return static_cast<int64_t>(rows_.size()); }
  int64_t waiting() const { return static_cast<int64_t>(waiting_.size()); }
  int64_t max_batch() const { return options_.max_batch; }

  /// Swaps in new weights (same sizes) as `version`; only while idle (throws otherwise).
  void load_weights(std::shared_ptr<const models::DecoderWeights> weights, std::string version);

 private:
  struct Job;
  struct Row;
  void admit();
  void retire(const std::vector<size_t>& finished);
  bool finished_after(Row& row, int64_t token);
  void move_row(size_t from, size_t to);
  void drop_cancelled();
  void step_once();
  // Drops every queued and running request without calling back, and empties every slot.
  void abandon_all();

  LocalEngineOptions options_;
  std::string version_;
  std::unique_ptr<models::Decoder> decoder_;
  std::mt19937_64 seeder_;
  std::deque<std::shared_ptr<Job>> waiting_;
  std::vector<std::unique_ptr<Row>> rows_;  // row i lives in slot i
  at::Tensor logits_;                       // [rows, vocab]: the next token's logits per row
};

}  // namespace rudder::rollout
