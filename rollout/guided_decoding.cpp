#include "rollout/guided_decoding.h"

#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

#include "core/error.h"
#include "models/decoder.h"

namespace rudder::rollout {

GenarmGuidance::GenarmGuidance(std::vector<std::shared_ptr<const models::DecoderWeights>> arms,
                               std::vector<double> weights, int64_t slots, int64_t max_length) {
  RUDDER_CHECK(!arms.empty(), "GenARM guidance needs at least one autoregressive reward model");
  RUDDER_CHECK(weights.empty() || weights.size() == arms.size(),
               "GenARM guidance: ", weights.size(), " weights for ", arms.size(), " reward models");
  const int64_t vocab = arms[0]->spec().vocab_size;
  c10::InferenceMode inference;
  for (auto& arm : arms) {
    RUDDER_CHECK(arm->spec().vocab_size == vocab,
                 "GenARM guidance: the reward models' vocabularies differ (", vocab, " and ",
                 arm->spec().vocab_size, ")");
    decoders_.push_back(std::make_unique<models::Decoder>(arm, slots, max_length));
    next_.push_back(torch::zeros({slots, vocab}, arm->options().dtype(torch::kFloat)));
  }
  combine_.weights = std::move(weights);
}

GenarmGuidance::~GenarmGuidance() = default;

void GenarmGuidance::process(at::Tensor& scores, const std::vector<RowView>& rows) {
  const auto n = static_cast<int64_t>(rows.size());
  RUDDER_CHECK(scores.size(1) == next_[0].size(1), "GenARM guidance: the base model's vocabulary (",
               scores.size(1), ") differs from the reward model's (", next_[0].size(1), ")");
  std::vector<at::Tensor> arms;
  for (const auto& next : next_) arms.push_back(next.narrow(0, 0, n).to(scores.device()));
  scores.copy_(genarm_combine(scores, torch::stack(arms), combine_));
}

void GenarmGuidance::on_prefill(int64_t slot, const std::vector<int64_t>& prompt) {
  const at::Tensor ids = torch::tensor(prompt, torch::kLong);
  for (size_t k = 0; k < decoders_.size(); ++k) {
    next_[k][slot].copy_(decoders_[k]->prefill(slot, ids, false)[0]);
  }
}

void GenarmGuidance::on_copy(int64_t src, int64_t dst) {
  for (size_t k = 0; k < decoders_.size(); ++k) {
    decoders_[k]->copy(src, dst);
    next_[k][dst].copy_(next_[k][src]);
  }
}

void GenarmGuidance::on_clear(int64_t slot) {
  for (auto& d : decoders_) d->clear(slot);
}

void GenarmGuidance::on_step(const at::Tensor& tokens) {
  for (size_t k = 0; k < decoders_.size(); ++k) {
    next_[k].narrow(0, 0, tokens.size(0)).copy_(decoders_[k]->step(tokens));
  }
}

GediGuidance::GediGuidance(std::shared_ptr<const models::DecoderWeights> cclm, GediOptions options,
                           int64_t slots, int64_t max_length)
    : options_(std::move(options)) {
  const int64_t vocab = cclm->spec().vocab_size;
  for (const int64_t code : {options_.desired_code, options_.anti_code}) {
    RUDDER_CHECK(code >= 0 && code < vocab, "GeDi guidance: control code ", code,
                 " outside the class-conditional LM's vocabulary of ", vocab);
  }
  RUDDER_CHECK(options_.desired_code != options_.anti_code,
               "GeDi guidance: the desired and anti control codes are the same token");
  RUDDER_CHECK(max_length + 1 <= cclm->spec().max_positions, "GeDi guidance: sequences of ",
               max_length, " tokens after the control code need ", max_length + 1,
               " positions; the class-conditional LM has ", cclm->spec().max_positions);
  c10::InferenceMode inference;
  next_logp_ = torch::zeros({2 * slots, vocab}, cclm->options().dtype(torch::kFloat));
  // One more position per slot: the control code comes first.
  decoder_ = std::make_unique<models::Decoder>(std::move(cclm), 2 * slots, max_length + 1);
  history_.assign(2 * slots, 0.0);
  scored_.assign(slots, 0);
}

GediGuidance::~GediGuidance() = default;

void GediGuidance::process(at::Tensor& scores, const std::vector<RowView>& rows) {
  const auto n = static_cast<int64_t>(rows.size());
  RUDDER_CHECK(scores.size(1) == next_logp_.size(1), "GeDi guidance: the base model's vocabulary (",
               scores.size(1), ") differs from the class-conditional LM's (", next_logp_.size(1),
               ")");
  const at::Tensor pairs = next_logp_.narrow(0, 0, 2 * n).view({n, 2, -1}).to(scores.device());
  const auto history =
      torch::tensor(std::vector<double>(history_.begin(), history_.begin() + 2 * n))
          .view({n, 2})
          .to(scores.device());
  std::vector<double> counts;
  for (int64_t i = 0; i < n; ++i) counts.push_back(static_cast<double>(scored_[i] + 1));
  const at::Tensor class_prob = gedi_posterior(
      pairs.select(1, 0), pairs.select(1, 1), history.select(1, 0).to(scores.scalar_type()),
      history.select(1, 1).to(scores.scalar_type()), torch::tensor(counts).to(scores.options()),
      options_.posterior);
  scores.copy_(gedi_combine(scores.log_softmax(-1), class_prob, options_.combine).logits);
}

void GediGuidance::on_prefill(int64_t slot, const std::vector<int64_t>& prompt) {
  const auto T = static_cast<int64_t>(prompt.size());
  const at::Tensor body = torch::tensor(prompt, torch::kLong);
  for (int64_t k = 0; k < 2; ++k) {
    const int64_t code = k == 0 ? options_.desired_code : options_.anti_code;
    const at::Tensor ids = torch::cat({torch::tensor({code}), body});
    const at::Tensor logp =
        decoder_->prefill(2 * slot + k, ids, true).to(torch::kFloat).log_softmax(-1);
    // The prompt's log-likelihood under this code: token j given the code and tokens before it.
    history_[2 * slot + k] =
        logp.narrow(0, 0, T).gather(1, body.to(logp.device()).unsqueeze(1)).sum().item<double>();
    next_logp_[2 * slot + k].copy_(logp[T]);
  }
  scored_[slot] = T;
}

void GediGuidance::on_copy(int64_t src, int64_t dst) {
  for (int64_t k = 0; k < 2; ++k) {
    decoder_->copy(2 * src + k, 2 * dst + k);
    next_logp_[2 * dst + k].copy_(next_logp_[2 * src + k]);
    history_[2 * dst + k] = history_[2 * src + k];
  }
  scored_[dst] = scored_[src];
}

void GediGuidance::on_clear(int64_t slot) {
  decoder_->clear(2 * slot);
  decoder_->clear(2 * slot + 1);
}

void GediGuidance::on_step(const at::Tensor& tokens) {
  const int64_t n = tokens.size(0);
  const at::Tensor twice = tokens.to(torch::kLong).repeat_interleave(2);  // [2n]: row i, twice
  const at::Tensor read = next_logp_.narrow(0, 0, 2 * n)
                              .gather(1, twice.to(next_logp_.device()).unsqueeze(1))
                              .squeeze(1)
                              .to(torch::kDouble)
                              .cpu();
  // Step first: if it throws, the history still matches the cache.
  const at::Tensor next = decoder_->step(twice).to(torch::kFloat).log_softmax(-1);
  for (int64_t r = 0; r < 2 * n; ++r) history_[r] += read[r].item<double>();
  for (int64_t i = 0; i < n; ++i) ++scored_[i];
  next_logp_.narrow(0, 0, 2 * n).copy_(next);
}

}  // namespace rudder::rollout
