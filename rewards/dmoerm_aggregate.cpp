#include "rewards/dmoerm_aggregate.h"

#include <torch/torch.h>

#include "core/error.h"

namespace rudder::rewards {
namespace {

void check_shapes(const at::Tensor& hidden, const DmoermAggregatorWeights& w) {
  RUDDER_CHECK(hidden.defined() && w.w1.defined() && w.b1.defined() && w.w2.defined() &&
                   w.b2.defined() && w.prelu_weight.defined(),
               "dmoerm_aggregate needs hidden and all of w1, b1, w2, b2, prelu_weight");
  RUDDER_CHECK(hidden.dim() == 3 && hidden.is_floating_point(),
               "dmoerm_aggregate needs floating hidden [B, K, H], got ", hidden.sizes(), " ",
               hidden.scalar_type());
  const int64_t in = hidden.size(1) * hidden.size(2);
  RUDDER_CHECK(w.w1.dim() == 2 && w.w1.size(1) == in, "dmoerm_aggregate needs w1 [M, K*H] = [M, ",
               in, "] for hidden ", hidden.sizes(), ", got ", w.w1.sizes());
  const int64_t m = w.w1.size(0);
  RUDDER_CHECK(w.b1.dim() == 1 && w.b1.size(0) == m && w.w2.dim() == 1 && w.w2.size(0) == m,
               "dmoerm_aggregate needs b1 [M] and w2 [M] with M = ", m, " (rows of w1), got ",
               w.b1.sizes(), " and ", w.w2.sizes());
  RUDDER_CHECK(w.b2.numel() == 1 && w.b2.dim() <= 1 && w.prelu_weight.numel() == 1 &&
                   w.prelu_weight.dim() <= 1,
               "dmoerm_aggregate needs b2 and prelu_weight scalar or [1], got ", w.b2.sizes(),
               " and ", w.prelu_weight.sizes());
  for (const at::Tensor* t : {&w.w1, &w.b1, &w.w2, &w.b2, &w.prelu_weight}) {
    RUDDER_CHECK(t->scalar_type() == hidden.scalar_type(),
                 "dmoerm_aggregate needs every weight in hidden's dtype ", hidden.scalar_type(),
                 ", got ", t->scalar_type());
  }
}

}  // namespace

at::Tensor dmoerm_aggregate(const at::Tensor& hidden, const DmoermAggregatorWeights& weights) {
  check_shapes(hidden, weights);
  const at::Tensor concat = hidden.reshape({hidden.size(0), -1});        // [B, K*H]
  const at::Tensor pre = torch::linear(concat, weights.w1, weights.b1);  // [B, M]
  const at::Tensor act = torch::where(pre > 0, pre, pre * weights.prelu_weight.reshape({}));
  return act.matmul(weights.w2) + weights.b2.reshape({});  // [B]
}

}  // namespace rudder::rewards
