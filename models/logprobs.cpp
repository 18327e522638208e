#include "models/logprobs.h"

#include <torch/torch.h>

#include "core/error.h"

namespace rudder::models {

at::Tensor token_logprobs(const at::Tensor& logits, const at::Tensor& input_ids) {
  RUDDER_CHECK(logits.dim() == 3 && input_ids.dim() == 2 && logits.size(0) == input_ids.size(0) &&
                   logits.size(1) == input_ids.size(1),
               "token_logprobs needs logits [B, T, V] and ids [B, T], got ", logits.sizes(),
               " and ", input_ids.sizes());
  const int64_t T = input_ids.size(1);
  const at::Tensor scores = logits.narrow(1, 0, T - 1).to(torch::kFloat);  // [B, T-1, V]
  const at::Tensor labels = input_ids.narrow(1, 1, T - 1).unsqueeze(-1);   // [B, T-1, 1]
  const at::Tensor picked = scores.gather(-1, labels).squeeze(-1) - torch::logsumexp(scores, -1);
  return torch::cat({torch::zeros({input_ids.size(0), 1}, picked.options()), picked}, 1);
}

at::Tensor masked_sum(const at::Tensor& values, const at::Tensor& mask) {
  return (values * mask.to(values.scalar_type())).sum(-1);
}

at::Tensor masked_row_mean(const at::Tensor& values, const at::Tensor& mask) {
  const at::Tensor m = mask.to(values.scalar_type());
  return (values * m).sum(-1) / m.sum(-1).clamp_min(1.0);
}

at::Tensor masked_mean(const at::Tensor& values, const at::Tensor& mask) {
  const at::Tensor m = mask.to(values.scalar_type());
  return (values * m).sum() / m.sum().clamp_min(1.0);
}

at::Tensor sequence_logprobs(const at::Tensor& logits, const at::Tensor& input_ids,
                             const at::Tensor& loss_mask, bool average) {
  const at::Tensor per_token = token_logprobs(logits, input_ids);
  return average ? masked_row_mean(per_token, loss_mask) : masked_sum(per_token, loss_mask);
}

}  // namespace rudder::models
