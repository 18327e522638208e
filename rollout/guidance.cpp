#include "rollout/guidance.h"

#include <cmath>
#include <tuple>

#include <torch/torch.h>

#include "core/error.h"

namespace rudder::rollout {
namespace {

// GeDi removes a filtered token by subtracting this from its logit (modeling_utils.py).
constexpr double kGediRemoval = 10000.0;

// The dtype the guidance math runs in: double when any input is double, else float32 (the papers'
// code mixes log-probs in fp32; half precision would lose the small class-probability gaps).
at::ScalarType compute_dtype(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == at::kDouble || b.scalar_type() == at::kDouble ? at::kDouble
                                                                          : at::kFloat;
}

void check_floating(const char* fn, const char* name, const at::Tensor& t) {
  RUDDER_CHECK(t.defined(), fn, ": ", name, " is undefined");
  RUDDER_CHECK(at::isFloatingType(t.scalar_type()), fn, ": ", name,
               " must be a floating-point tensor, got ", t.scalar_type());
}

// Scores over a vocabulary: [..., V] with V >= 1.
void check_vocab_scores(const char* fn, const char* name, const at::Tensor& t) {
  check_floating(fn, name, t);
  RUDDER_CHECK(t.dim() >= 1 && t.size(-1) >= 1, fn, ": ", name,
               " must be [..., V] with a non-empty vocabulary, got shape ", t.sizes());
}

void check_same_device(const char* fn, const at::Tensor& a, const char* a_name, const at::Tensor& b,
                       const char* b_name) {
  RUDDER_CHECK(a.device() == b.device(), fn, ": ", a_name, " is on ", a.device(), " but ", b_name,
               " is on ", b.device());
}

// One value per row of `scores` [..., V]: shape [...].
void check_row_shape(const char* fn, const char* name, const at::Tensor& t,
                     const at::Tensor& scores) {
  RUDDER_CHECK(t.defined(), fn, ": ", name, " is undefined");
  const auto rows = scores.sizes().slice(0, scores.dim() - 1);
  RUDDER_CHECK(t.sizes() == rows, fn, ": ", name, " must have one value per row, shape ", rows,
               " for scores ", scores.sizes(), ", got ", t.sizes());
  check_same_device(fn, t, name, scores, "the scores");
}

void check_gedi_posterior_inputs(const at::Tensor& logp_desired, const at::Tensor& logp_anti,
                                 const at::Tensor& history_desired, const at::Tensor& history_anti,
                                 const at::Tensor& num_tokens, const GediPosteriorOptions& o) {
  constexpr const char* kFn = "gedi_posterior";
  check_vocab_scores(kFn, "logp_desired", logp_desired);
  check_floating(kFn, "logp_anti", logp_anti);
  RUDDER_CHECK(logp_anti.sizes() == logp_desired.sizes(), kFn,
               ": logp_desired and logp_anti must have the same shape, got ", logp_desired.sizes(),
               " and ", logp_anti.sizes());
  check_same_device(kFn, logp_anti, "logp_anti", logp_desired, "logp_desired");
  check_floating(kFn, "history_desired", history_desired);
  check_floating(kFn, "history_anti", history_anti);
  check_row_shape(kFn, "history_desired", history_desired, logp_desired);
  check_row_shape(kFn, "history_anti", history_anti, logp_desired);
  check_row_shape(kFn, "num_tokens", num_tokens, logp_desired);
  RUDDER_CHECK(num_tokens.scalar_type() != at::kBool, kFn,
               ": num_tokens must be numeric, got Bool");
  if (num_tokens.is_cpu() && num_tokens.numel() > 0) {
    const double fewest = num_tokens.min().item<double>();
    RUDDER_CHECK(fewest >= 1, kFn,
                 ": num_tokens counts the candidate token, so it must be >= 1, got ", fewest);
  }
  RUDDER_CHECK(std::isfinite(o.logit_scale) && o.logit_scale > 0, kFn,
               ": logit_scale must be finite and > 0, got ", o.logit_scale);
  RUDDER_CHECK(
      std::isfinite(o.bias_desired) && std::isfinite(o.bias_anti) && std::isfinite(o.class_bias),
      kFn, ": biases must be finite, got bias_desired ", o.bias_desired, ", bias_anti ",
      o.bias_anti, ", class_bias ", o.class_bias);
}

void check_gedi_combine_inputs(const at::Tensor& lm_logp, const at::Tensor& class_prob,
                               const GediCombineOptions& o) {
  constexpr const char* kFn = "gedi_combine";
  check_vocab_scores(kFn, "lm_logp", lm_logp);
  check_floating(kFn, "class_prob", class_prob);
  RUDDER_CHECK(class_prob.sizes() == lm_logp.sizes(), kFn,
               ": lm_logp and class_prob must have the same shape, got ", lm_logp.sizes(), " and ",
               class_prob.sizes());
  check_same_device(kFn, class_prob, "class_prob", lm_logp, "lm_logp");
  if (class_prob.is_cpu()) {
    const bool outside = (class_prob < 0)
                             .logical_or(class_prob > 1)
                             .logical_or(class_prob.isnan())
                             .any()
                             .item<bool>();
    RUDDER_CHECK(!outside, kFn, ": class_prob must lie in [0, 1], got values from ",
                 class_prob.min().item<double>(), " to ", class_prob.max().item<double>());
  }
  RUDDER_CHECK(std::isfinite(o.omega) && o.omega >= 0, kFn, ": omega must be finite and >= 0, got ",
               o.omega);
  RUDDER_CHECK(o.filter_p >= 0 && o.filter_p <= 1, kFn, ": filter_p must be in [0, 1], got ",
               o.filter_p);
  RUDDER_CHECK(o.target_p >= 0 && o.target_p <= 1, kFn, ": target_p must be in [0, 1], got ",
               o.target_p);
}

}  // namespace

at::Tensor genarm_combine(const at::Tensor& base_logits, const at::Tensor& arm_logits,
                          const GenarmCombineOptions& options) {
  constexpr const char* kFn = "genarm_combine";
  check_vocab_scores(kFn, "base_logits", base_logits);
  check_floating(kFn, "arm_logits", arm_logits);
  RUDDER_CHECK(arm_logits.dim() == base_logits.dim() + 1 &&
                   arm_logits.sizes().slice(1) == base_logits.sizes() && arm_logits.size(0) >= 1,
               kFn, ": arm_logits must be [K, ", base_logits.sizes(),
               "] (K >= 1 ARMs over the shape of base_logits), got ", arm_logits.sizes());
  check_same_device(kFn, arm_logits, "arm_logits", base_logits, "base_logits");
  const int64_t num_arms = arm_logits.size(0);
  const auto& weights = options.weights;
  RUDDER_CHECK(weights.empty() || static_cast<int64_t>(weights.size()) == num_arms, kFn, ": ",
               weights.size(), " weights for ", num_arms, " ARMs");
  for (size_t k = 0; k < weights.size(); ++k) {
    RUDDER_CHECK(std::isfinite(weights[k]), kFn, ": weights[", k, "] must be finite, got ",
                 weights[k]);
  }
  RUDDER_CHECK(std::isfinite(options.temperature) && options.temperature > 0, kFn,
               ": temperature must be finite and > 0, got ", options.temperature);

  const at::ScalarType dtype = compute_dtype(base_logits, arm_logits);
  const at::Tensor logp_arms = at::log_softmax(arm_logits.to(dtype), -1);  // [K, ..., V]
  at::Tensor scores = at::log_softmax(base_logits.to(dtype), -1);          // [..., V]
  for (int64_t k = 0; k < num_arms; ++k) {
    const double alpha = weights.empty() ? 1.0 : weights[k];
    // Skipped at 0 so that an ARM's -inf (a masked token) cannot turn into 0 * -inf = NaN.
    if (alpha != 0.0) scores = scores + alpha * logp_arms[k];
  }
  return at::log_softmax(scores / options.temperature, -1);
}

at::Tensor gedi_posterior(const at::Tensor& logp_desired, const at::Tensor& logp_anti,
                          const at::Tensor& history_desired, const at::Tensor& history_anti,
                          const at::Tensor& num_tokens, const GediPosteriorOptions& options) {
  check_gedi_posterior_inputs(logp_desired, logp_anti, history_desired, history_anti, num_tokens,
                              options);
  const at::ScalarType dtype = compute_dtype(logp_desired, logp_anti);
  const at::Tensor count = num_tokens.to(dtype).unsqueeze(-1);  // [..., 1]
  const at::Tensor score_desired =
      (history_desired.to(dtype).unsqueeze(-1) + logp_desired.to(dtype)) / count;  // [..., V]
  const at::Tensor score_anti =
      (history_anti.to(dtype).unsqueeze(-1) + logp_anti.to(dtype)) / count;  // [..., V]
  // softmax over the two classes, taken at c, is the sigmoid of the logit difference.
  const double offset = options.bias_desired + options.class_bias - options.bias_anti;
  return at::sigmoid(options.logit_scale * (score_desired - score_anti) + offset);
}

GediCombineOutput gedi_combine(const at::Tensor& lm_logp, const at::Tensor& class_prob,
                               const GediCombineOptions& options) {
  check_gedi_combine_inputs(lm_logp, class_prob, options);
  const at::ScalarType dtype = compute_dtype(lm_logp, class_prob);
  const at::Tensor prob = class_prob.to(dtype);                      // [..., V]
  at::Tensor log_weighted = at::log_softmax(lm_logp.to(dtype), -1);  // [..., V]
  // Skipped at 0 so that a zero class probability cannot turn into 0 * -inf = NaN.
  if (options.omega != 0.0) log_weighted = log_weighted + options.omega * at::log(prob);
  log_weighted = at::log_softmax(log_weighted, -1);

  GediCombineOutput out;
  out.weighted_probs = at::exp(log_weighted);
  at::Tensor sorted_prob, order;  // [..., V]: ascending class probability, ties in vocab order
  std::tie(sorted_prob, order) = at::sort(prob, /*stable=*/true, /*dim=*/-1, /*descending=*/false);
  const at::Tensor cumulative = out.weighted_probs.gather(-1, order).cumsum(-1);  // [..., V]
  const at::Tensor remove_sorted =
      (cumulative < options.filter_p).logical_and(sorted_prob < options.target_p);
  out.removed = at::zeros_like(remove_sorted).scatter(-1, order, remove_sorted);
  out.logits = log_weighted - kGediRemoval * out.removed.to(dtype);
  out.probs = at::softmax(out.logits, -1);
  return out;
}

}  // namespace rudder::rollout
