#include "models/detail/projection.h"

#include <algorithm>
#include <cmath>

#include <torch/torch.h>

#include "core/error.h"
#include "core/runtime.h"
#include "models/autocast.h"

namespace rudder::models::detail {

ProjectionImpl::ProjectionImpl(int64_t in, int64_t out, bool with_bias, bool transposed_layout)
    : in_features(in), out_features(out), transposed(transposed_layout) {
  weight = register_parameter("weight", torch::randn(transposed ? std::vector<int64_t>{in, out}
                                                                : std::vector<int64_t>{out, in}) *
                                            0.02);
  if (with_bias) bias = register_parameter("bias", torch::zeros({out}));
}

at::Tensor ProjectionImpl::forward(const at::Tensor& x) {
  at::Tensor y;
  if (transposed) {
    auto shape = x.sizes().vec();
    shape.back() = out_features;
    const at::Tensor flat = x.reshape({-1, in_features});
    y = (bias.defined() ? torch::addmm(bias, flat, weight) : torch::mm(flat, weight)).view(shape);
  } else {
    y = torch::linear(x, weight, bias);
  }
  return add_lora(std::move(y), x);
}

at::Tensor ProjectionImpl::add_lora(at::Tensor y, const at::Tensor& x) {
  if (!lora_A || merged) return y;
  const at::Tensor dropped = lora_dropout > 0 ? torch::dropout(x, lora_dropout, is_training()) : x;
  return y + lora_B(lora_A(dropped)) * lora_scaling;
}

namespace {

bool can_fuse(const at::Tensor& x, const std::vector<ProjectionImpl*>& ps) {
  if (ps.size() < 2 || x.dim() < 1 || x.numel() / std::max<int64_t>(x.size(-1), 1) < kFuseMinRows)
    return false;
  // Under autocast each product keeps a bf16 copy of its weights for the backward either way;
  // outside it, one product over copied weights would keep that copy beside the parameters.
  if (!models::autocast_enabled(x.device().type())) return false;
  static const bool enabled = !core::turned_off("RUDDER_FUSE_PROJECTIONS");
  if (!enabled) return false;
  const ProjectionImpl& first = *ps.front();
  for (const ProjectionImpl* p : ps) {
    if (p->transposed || p->in_features != first.in_features ||
        p->weight.scalar_type() != first.weight.scalar_type() ||
        p->weight.device() != first.weight.device() || p->bias.defined() != first.bias.defined() ||
        // A frozen part (HFT) would still get its slice of the weight gradient computed.
        p->weight.requires_grad() != first.weight.requires_grad())
      return false;
  }
  return true;
}

// The one product over the projections' weights side by side, [..., the sum of their output
// widths]; can_fuse(x, ps) holds.
at::Tensor joined_product(const at::Tensor& x, const std::vector<ProjectionImpl*>& ps) {
  std::vector<at::Tensor> weights, biases;
  for (const ProjectionImpl* p : ps) {
    weights.push_back(p->weight);
    if (p->bias.defined()) biases.push_back(p->bias);
  }
  return torch::linear(x, torch::cat(weights, 0),
                       biases.empty() ? at::Tensor() : torch::cat(biases, 0));
}

}  // namespace

std::vector<at::Tensor> project_together(const at::Tensor& x,
                                         const std::vector<ProjectionImpl*>& ps) {
  std::vector<at::Tensor> out;
  out.reserve(ps.size());
  if (!can_fuse(x, ps)) {
    for (ProjectionImpl* p : ps) out.push_back(p->forward(x));
    return out;
  }
  std::vector<int64_t> widths;
  for (const ProjectionImpl* p : ps) widths.push_back(p->out_features);
  // split's backward joins the parts' gradients in one concatenation; a narrow per part would
  // each fill a full-width zero gradient and add them up.
  const std::vector<at::Tensor> parts = joined_product(x, ps).split_with_sizes(widths, -1);
  for (size_t i = 0; i < ps.size(); ++i) out.push_back(ps[i]->add_lora(parts[i], x));
  return out;
}

at::Tensor project_joined(const at::Tensor& x, const std::vector<ProjectionImpl*>& ps) {
  if (!can_fuse(x, ps)) return {};
  for (const ProjectionImpl* p : ps)
    if (p->lora_A && !p->merged) return {};
  return joined_product(x, ps);
}

void ProjectionImpl::enable_lora(int64_t rank, double alpha, double dropout) {
  RUDDER_CHECK(rank > 0, "LoRA rank must be > 0, got ", rank);
  RUDDER_CHECK(!lora_A, "LoRA is already enabled on this projection");
  lora_A = register_module(
      "lora_A", torch::nn::Linear(torch::nn::LinearOptions(in_features, rank).bias(false)));
  lora_B = register_module(
      "lora_B", torch::nn::Linear(torch::nn::LinearOptions(rank, out_features).bias(false)));
  torch::NoGradGuard no_grad;
  const double bound =
      1.0 / std::sqrt(static_cast<double>(in_features));  // kaiming_uniform(a=sqrt(5))
  lora_A->weight.uniform_(-bound, bound);
  lora_B->weight.zero_();
  lora_scaling = alpha / static_cast<double>(rank);
  lora_dropout = dropout;
  lora_A->to(weight.device(), weight.scalar_type());
  lora_B->to(weight.device(), weight.scalar_type());
}

void ProjectionImpl::merge() {
  RUDDER_CHECK(lora_A, "no LoRA adapter to merge");
  if (merged) return;
  torch::NoGradGuard no_grad;
  const at::Tensor delta = torch::mm(lora_B->weight, lora_A->weight) * lora_scaling;  // [out, in]
  weight.add_(transposed ? delta.t() : delta);
  merged = true;
}

void ProjectionImpl::unmerge() {
  RUDDER_CHECK(lora_A, "no LoRA adapter to unmerge");
  if (!merged) return;
  torch::NoGradGuard no_grad;
  const at::Tensor delta = torch::mm(lora_B->weight, lora_A->weight) * lora_scaling;
  weight.sub_(transposed ? delta.t() : delta);
  merged = false;
}

}  // namespace rudder::models::detail
