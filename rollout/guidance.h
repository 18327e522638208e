// Guided decoding rules as pure tensor functions: GenARM (ALGORITHMS.md section 7) and GeDi
// (section 8). Each works on the scores of one decoding step, for one row ([V]) or a batch of
// rows ([B, V]); the last dimension is always the vocabulary. Half-precision inputs are computed
// in float32, double stays double. Shapes and options are checked on every call; tensor values
// (num_tokens >= 1, class_prob in [0, 1]) only when the tensors live on the CPU, so that decoding
// on an accelerator never waits on a host round trip. Stateless and thread-safe.
#pragma once

#include <vector>

#include <ATen/core/Tensor.h>

namespace rudder::rollout {

/// Options of genarm_combine.
struct GenarmCombineOptions {
  // alpha_k = beta_r / beta for each ARM, in the order of arm_logits' first dimension; empty means
  // alpha = 1 for every ARM (the GenARM README default). Any finite value.
  std::vector<double> weights;
  // User sampling temperature, applied to the combined scores before renormalizing; > 0.
  double temperature = 1.0;
};

/// GenARM's guided next-token distribution (Xu et al., ICLR 2025, "GenARM", the decoding rule
/// pi_dec = pi_base prod_k pi_r_k^alpha_k / Z, multi-objective form; ALGORITHMS.md sec. 7):
/// log_softmax((log_softmax(base) + sum_k alpha_k log_softmax(arm_k)) / T).
/// base_logits [..., V] and arm_logits [K, ..., V] are logits or log-probs; returns [..., V].
at::Tensor genarm_combine(const at::Tensor& base_logits, const at::Tensor& arm_logits,
                          const GenarmCombineOptions& options = {});

/// Options of gedi_posterior.
struct GediPosteriorOptions {
  // alpha: the CC-LM's learned logit scale that multiplies both class scores; > 0, 1 when the
  // model was trained without --logit_scale.
  double logit_scale = 1.0;
  // The CC-LM's learned output bias on the desired class's logit (GeDi's `bias[0]`); 0 if none.
  double bias_desired = 0.0;
  // The same bias on the anti class's logit (GeDi's `bias[1]`); only the difference matters.
  double bias_anti = 0.0;
  // Extra prior on the desired class (GeDi's --class_bias: 0 by default, 2.0 for detoxify).
  double class_bias = 0.0;
};

/// GeDi class posterior P(c | x_<t, v) for every candidate token v (Krause et al., EMNLP Findings
/// 2021, "GeDi", the Bayes-rule posterior over the control code, with the official code's length
/// normalization; ALGORITHMS.md sec. 8):
///   l_y(v) = (history_y + logp_y(v)) / num_tokens,  y in {c, c-bar}
///   P(c | v) = softmax(logit_scale * [l_c, l_cbar] + [bias_desired + class_bias, bias_anti])[c].
/// logp_desired, logp_anti [..., V]: the CC-LM's next-token log-probs under the desired and anti
/// control codes; history_desired, history_anti [...]: summed log-likelihood of the tokens scored
/// so far (prompt included); num_tokens [...]: tokens scored including v (>= 1). Returns [..., V].
at::Tensor gedi_posterior(const at::Tensor& logp_desired, const at::Tensor& logp_anti,
                          const at::Tensor& history_desired, const at::Tensor& history_anti,
                          const at::Tensor& num_tokens, const GediPosteriorOptions& options = {});

/// Options of gedi_combine (defaults: generate_GeDi.py and scripts/run_generation.sh).
struct GediCombineOptions {
  // disc_weight: the exponent on the class posterior; >= 0 (0 leaves the LM distribution).
  double omega = 30.0;
  // Tokens in the low-posterior tail holding less than this cumulative p_w mass may be removed;
  // in [0, 1] (0 removes nothing).
  double filter_p = 0.8;
  // Tokens whose class posterior is at least this are never removed; in [0, 1]. With a class
  // bias b the official scripts pass sigmoid(logit(target_p) + b) here.
  double target_p = 0.8;
};

/// What gedi_combine produces; every tensor has the shape of lm_logp.
struct GediCombineOutput {
  at::Tensor logits;          // log p_w, minus 10000 where removed: the scores to sample from
  at::Tensor weighted_probs;  // p_w = softmax(log P_LM + omega log P(c|v)), before filtering
  at::Tensor probs;           // softmax(logits): the final distribution after filtering
  at::Tensor removed;         // bool: true where the filtering heuristic removed the token
};

/// GeDi weighted posterior p_w = P_LM(v) P(c|v)^omega / Z and its filtering heuristic (Krause et
/// al., EMNLP Findings 2021, "GeDi", with the official code's semantics; ALGORITHMS.md sec. 8):
/// sort tokens by P(c|v) ascending, take the cumulative sum of p_w in that order, remove v when
/// cumsum(v) < filter_p and P(c|v) < target_p by subtracting 10000 from its logit. Ties in P(c|v)
/// keep vocabulary order.
/// lm_logp [..., V]: the guided LM's next-token log-probs (logits are log-softmaxed first);
/// class_prob [..., V]: gedi_posterior's output.
GediCombineOutput gedi_combine(const at::Tensor& lm_logp, const at::Tensor& class_prob,
                               const GediCombineOptions& options = {});

}  // namespace rudder::rollout
