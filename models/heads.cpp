#include "models/heads.h"

#include <torch/torch.h>

#include "core/error.h"

namespace rudder::models {

at::Tensor last_real_index(const at::Tensor& attention_mask) {
  const int64_t T = attention_mask.size(1);
  const at::Tensor positions =
      torch::arange(T, attention_mask.options().dtype(torch::kLong)).unsqueeze(0);
  return (positions * (attention_mask != 0).to(torch::kLong)).amax(1);  // [B]
}

ScalarHeadImpl::ScalarHeadImpl(int64_t hidden_size) {
  score = register_module("score", torch::nn::Linear(hidden_size, 1));
  torch::NoGradGuard no_grad;
  score->weight.normal_(0.0, 1.0 / std::sqrt(static_cast<double>(hidden_size + 1)));
  score->bias.zero_();
}

// Scores leave in float32 even from bfloat16 weights or a bf16 autocast region: losses and
// calibration read them.
at::Tensor ScalarHeadImpl::forward(const at::Tensor& hidden) {
  const at::Tensor scores = score(hidden).squeeze(-1);  // [batch, seq]
  const bool reduced = scores.scalar_type() == at::kBFloat16 || scores.scalar_type() == at::kHalf;
  return reduced ? scores.to(at::kFloat) : scores;
}

at::Tensor ScalarHeadImpl::sequence_scores(const at::Tensor& hidden,
                                           const at::Tensor& attention_mask) {
  RUDDER_CHECK(hidden.dim() == 3 && attention_mask.sizes() == hidden.sizes().slice(0, 2),
               "sequence_scores needs hidden [B, T, H] and mask [B, T], got ", hidden.sizes(),
               " and ", attention_mask.sizes());
  const at::Tensor index = last_real_index(attention_mask).to(hidden.device());  // [B]
  const at::Tensor last =
      hidden.gather(1, index.view({-1, 1, 1}).expand({-1, 1, hidden.size(2)}));  // [B,1,H]
  return forward(last).squeeze(1);
}

}  // namespace rudder::models
