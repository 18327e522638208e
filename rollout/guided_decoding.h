// Guided decoding as logits processors of the local engine: GenARM (an autoregressive reward
// model's next-token log-probs added to the base model's, ALGORITHMS.md section 7) and GeDi (a
// class-conditional LM's Bayes-rule class posterior for every candidate token, section 8).
// Each keeps its own models::Decoder with the engine's slot layout, so its KV cache follows
// the engine's rows through admission, forks and retirement (the LogitsProcessor hooks).
// Construct one with the engine's max_batch and max_length; one engine drives it.
#pragma once

#include <memory>
#include <vector>

#include "rollout/guidance.h"
#include "rollout/logits_processors.h"

namespace rudder::models {
class Decoder;
class DecoderWeights;
}  // namespace rudder::models

namespace rudder::rollout {

/// GenARM guidance: scores become log_softmax(base) + sum_k alpha_k log_softmax(arm_k), to which
/// the engine then applies the request's temperature and filters. The ARMs may differ in size
/// from the base model (weak-to-strong) but must share its vocabulary.
class GenarmGuidance : public LogitsProcessor {
 public:
  /// `weights`: alpha_k per ARM (empty: 1 each). Throws InvalidArgument for no ARM, a weight
  /// count that differs from the ARM count, or ARMs of different vocabularies.
  GenarmGuidance(std::vector<std::shared_ptr<const models::DecoderWeights>> arms,
                 std::vector<double> weights, int64_t slots, int64_t max_length);
  ~GenarmGuidance() override;

  void process(at::Tensor& scores, const std::vector<RowView>& rows) override;
  void on_prefill(int64_t slot, const std::vector<int64_t>& prompt) override;
  void on_copy(int64_t src, int64_t dst) override;
  void on_clear(int64_t slot) override;
  void on_step(const at::Tensor& tokens) override;

 private:
  std::vector<std::unique_ptr<models::Decoder>> decoders_;
  std::vector<at::Tensor> next_;  // per ARM [slots, vocab]: next-token logits per slot
  GenarmCombineOptions combine_;
};

/// What GeDi guidance needs besides the class-conditional LM.
struct GediOptions {
  int64_t desired_code = -1;  // token id of the desired control code (put before the prompt)
  int64_t anti_code = -1;     // token id of the anti code
  GediPosteriorOptions posterior;
  GediCombineOptions combine;
};

/// GeDi guidance: the CC-LM reads each row's prompt and output after the desired and after the
/// anti code; scores become gedi_combine(log_softmax(scores), P(c | x, v)).logits.
class GediGuidance : public LogitsProcessor {
 public:
  /// Throws InvalidArgument for codes outside the CC-LM's vocabulary or equal codes.
  GediGuidance(std::shared_ptr<const models::DecoderWeights> cclm, GediOptions options,
               int64_t slots, int64_t max_length);
  ~GediGuidance() override;

  void process(at::Tensor& scores, const std::vector<RowView>& rows) override;
  void on_prefill(int64_t slot, const std::vector<int64_t>& prompt) override;
  void on_copy(int64_t src, int64_t dst) override;
  void on_clear(int64_t slot) override;
  void on_step(const at::Tensor& tokens) override;

 private:
  GediOptions options_;
  std::unique_ptr<models::Decoder> decoder_;  // slot 2s: desired code, 2s + 1: anti code
  at::Tensor next_logp_;                      // [2 slots, vocab]
  std::vector<double> history_;               // [2 slots]: log-likelihood of the tokens read
  std::vector<int64_t> scored_;               // [slots]: tokens scored (prompt and output)
};

}  // namespace rudder::rollout
