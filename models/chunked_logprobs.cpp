#include "models/chunked_logprobs.h"

#include <algorithm>

#include <torch/torch.h>

#include "core/error.h"
#include "models/causal_lm.h"
#include "models/logprobs.h"

namespace rudder::models {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Float32 logits [rows, vocab] of one chunk of hidden states [rows, hidden]. An empty bias is
// none (autograd functions take defined tensors only).
at::Tensor chunk_logits(const at::Tensor& hidden, const at::Tensor& weight,
                        const at::Tensor& bias) {
  const at::Tensor z = bias.numel() > 0 ? torch::addmm(bias, hidden, weight.t())
                                        : torch::mm(hidden, weight.t());  // [rows, vocab]
  return z.scalar_type() == torch::kFloat ? z : z.to(torch::kFloat);
}

int64_t rows_per_chunk(int64_t chunk_elements, int64_t vocab) {
  return std::max<int64_t>(1, chunk_elements / std::max<int64_t>(1, vocab));
}

// The autograd function. Saved for the backward: the inputs, each token's logsumexp and, with
// entropy, each token's entropy; nothing of size vocab.
class ChunkedScores : public torch::autograd::Function<ChunkedScores> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden,
                               const at::Tensor& weight, const at::Tensor& bias,
                               const at::Tensor& targets, int64_t chunk_rows, bool entropy) {
    const int64_t n = hidden.size(0);
    const auto f32 = hidden.options().dtype(torch::kFloat);
    at::Tensor logp = torch::empty({n}, f32), lse = torch::empty({n}, f32);  // [tokens]
    at::Tensor ent = torch::zeros({n}, f32);
    for (int64_t s = 0; s < n; s += chunk_rows) {
      const int64_t c = std::min(chunk_rows, n - s);
      at::Tensor z = chunk_logits(hidden.narrow(0, s, c), weight, bias);  // [c, vocab]
      const at::Tensor l = torch::logsumexp(z, 1);
      lse.narrow(0, s, c).copy_(l);
      logp.narrow(0, s, c).copy_(z.gather(1, targets.narrow(0, s, c).unsqueeze(1)).squeeze(1) - l);
      if (entropy) {  // H = lse - sum_v p_v z_v
        const at::Tensor p = (z - l.unsqueeze(1)).exp_();
        ent.narrow(0, s, c).copy_(l - (p.mul_(z)).sum(1));
      }
    }
    ctx->save_for_backward({hidden, weight, bias, targets, lse, ent});
    ctx->saved_data["chunk_rows"] = chunk_rows;
    ctx->saved_data["entropy"] = entropy;
    ctx->mark_non_differentiable({lse});
    return {logp, ent, lse};
  }

  // With z the logits and p = softmax(z): d logp_y / dz = onehot(y) - p and
  // dH / dz = -p (log p + H).
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &hidden = saved[0], &weight = saved[1], &bias = saved[2];
    const at::Tensor &targets = saved[3], &lse = saved[4], &ent = saved[5];
    const int64_t chunk_rows = ctx->saved_data["chunk_rows"].toInt();
    const bool entropy = ctx->saved_data["entropy"].toBool() && grads[1].defined();
    const int64_t n = hidden.size(0);
    const auto f32 = hidden.options().dtype(torch::kFloat);
    const at::Tensor g_logp = grads[0].defined() ? grads[0] : torch::zeros({n}, f32);
    const bool need_hidden = ctx->needs_input_grad(0), need_weight = ctx->needs_input_grad(1);
    const bool need_bias = bias.numel() > 0 && ctx->needs_input_grad(2);
    at::Tensor g_hidden = need_hidden ? torch::empty_like(hidden) : at::Tensor();
    at::Tensor g_weight = need_weight ? torch::zeros(weight.sizes(), f32) : at::Tensor();
    at::Tensor g_bias = need_bias ? torch::zeros({weight.size(0)}, f32) : at::Tensor();
    for (int64_t s = 0; s < n; s += chunk_rows) {
      const int64_t c = std::min(chunk_rows, n - s);
      const at::Tensor h = hidden.narrow(0, s, c);
      const at::Tensor gl = g_logp.narrow(0, s, c).unsqueeze(1);  // [c, 1]
      at::Tensor gz = chunk_logits(h, weight, bias).sub_(lse.narrow(0, s, c).unsqueeze(1));
      if (entropy) {  // gz holds log p: dz = -p * (g_logp + g_ent (log p + H))
        const at::Tensor p = gz.exp();
        gz.add_(ent.narrow(0, s, c).unsqueeze(1)).mul_(grads[1].narrow(0, s, c).unsqueeze(1));
        gz = p.mul_(gz.add_(gl)).neg_();
      } else {
        gz.exp_().mul_(-gl);
      }
      gz.scatter_add_(1, targets.narrow(0, s, c).unsqueeze(1), gl);  // [c, vocab]
      const at::Tensor gz_w = gz.to(weight.scalar_type());
      if (need_hidden) g_hidden.narrow(0, s, c).copy_(torch::mm(gz_w, weight));
      // Into the float32 sum directly: no [vocab, hidden] temporary per chunk.
      if (need_weight) g_weight.addmm_(gz.t(), h.to(torch::kFloat));
      if (need_bias) g_bias.add_(gz.sum(0));
    }
    if (need_weight) g_weight = g_weight.to(weight.scalar_type());
    if (need_bias) g_bias = g_bias.to(bias.scalar_type());
    return {g_hidden, g_weight, g_bias, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

TokenScores chunked_token_scores(const at::Tensor& hidden, const OutputHead& head,
                                 const at::Tensor& targets, const ChunkedScoreOptions& options) {
  const at::Tensor& w = head.weight;
  RUDDER_CHECK(
      hidden.dim() == 2 && w.dim() == 2 && hidden.size(1) == w.size(1),
      "chunked_token_scores needs hidden [tokens, hidden] and weight [vocab, hidden], got ",
      hidden.sizes(), " and ", w.sizes());
  RUDDER_CHECK(targets.dim() == 1 && targets.size(0) == hidden.size(0),
               "chunked_token_scores needs targets [", hidden.size(0), "], got ", targets.sizes());
  RUDDER_CHECK(!head.bias.defined() || head.bias.sizes() == c10::IntArrayRef{w.size(0)},
               "output bias must be [", w.size(0), "], got ", head.bias.sizes());
  RUDDER_CHECK(options.chunk_elements > 0, "chunk_elements must be positive, got ",
               options.chunk_elements);
  const at::Tensor h = hidden.to(w.scalar_type()).contiguous();
  const auto out =
      ChunkedScores::apply(h, w, head.bias.defined() ? head.bias : torch::empty({0}, w.options()),
                           targets.to(torch::kLong).contiguous(),
                           rows_per_chunk(options.chunk_elements, w.size(0)), options.entropy);
  return {out[0], out[1]};
}

at::Tensor chunked_cross_entropy(const at::Tensor& hidden, const OutputHead& head,
                                 const at::Tensor& targets, const ChunkedScoreOptions& options) {
  return -chunked_token_scores(hidden, head, targets, options).logprobs.mean();
}

namespace {

// Scores [B, T] from the whole logits of `hidden` [B, T, hidden], as users' code computes them;
// 0 outside `keep` [B, T]. Chunking such a batch would save a few chunks' memory (these logits,
// their float32 copy and the softmax stay for the backward) and cost a second product there.
TokenScores whole_logit_scores(CausalLM& model, const at::Tensor& hidden, const at::Tensor& ids,
                               const at::Tensor& keep, bool with_entropy) {
  const int64_t B = ids.size(0), T = ids.size(1);
  const auto f32 = hidden.options().dtype(torch::kFloat);
  const at::Tensor logits = model.project_logits(hidden).to(torch::kFloat);  // [B, T, V]
  at::Tensor entropy = torch::zeros({B, T}, f32);
  if (with_entropy && T > 1) {  // H = lse - sum_v p_v z_v, as the chunked path
    const at::Tensor z = logits.narrow(1, 0, T - 1);  // [B, T - 1, V]: position t predicts t + 1
    const at::Tensor h = torch::logsumexp(z, -1) - (torch::softmax(z, -1) * z).sum(-1);
    entropy = torch::cat({torch::zeros({B, 1}, f32), h}, 1);
  }
  const at::Tensor unkept = keep.logical_not();  // [B, T]
  return {token_logprobs(logits, ids).masked_fill(unkept, 0.0), entropy.masked_fill(unkept, 0.0)};
}

// Scores [B, T] of the positions `keep` [B, T] holds alone, chunked (or from their logits where
// the head is not one projection); 0 elsewhere.
TokenScores kept_position_scores(CausalLM& model, const at::Tensor& hidden, const at::Tensor& ids,
                                 const at::Tensor& keep, const ChunkedScoreOptions& options) {
  const int64_t B = ids.size(0), T = ids.size(1);
  const at::Tensor at_pos = keep.reshape(-1).nonzero().squeeze(1);  // [n] flat b * T + t
  const at::Tensor rows = hidden.reshape({B * T, -1}).index_select(0, at_pos - 1);
  const at::Tensor targets = ids.reshape(-1).index_select(0, at_pos);
  TokenScores picked;
  const OutputHead head = model.output_head();
  if (head.weight.defined()) {
    picked = chunked_token_scores(rows, head, targets, options);
  } else {  // a head that is not one projection (LoRA with dropout while training)
    const at::Tensor logits = model.project_logits(rows).to(torch::kFloat);  // [n, vocab]
    const at::Tensor logp = torch::log_softmax(logits, -1);
    picked.logprobs = logp.gather(1, targets.unsqueeze(1)).squeeze(1);
    picked.entropy =
        options.entropy ? -(logp.exp() * logp).sum(1) : torch::zeros_like(picked.logprobs);
  }
  const auto f32 = hidden.options().dtype(torch::kFloat);
  auto scatter = [&](const at::Tensor& v) {
    return torch::zeros({B * T}, f32).index_add(0, at_pos, v).view({B, T});
  };
  return {scatter(picked.logprobs), scatter(picked.entropy)};
}

}  // namespace

TokenScores score_tokens(CausalLM& model, const ForwardInput& input, const at::Tensor& mask,
                         const ChunkedScoreOptions& options) {
  ForwardInput with_head = input;
  with_head.head_follows = true;
  const at::Tensor hidden = model.final_hidden(with_head);  // [B, T, hidden]
  const at::Tensor& ids = input.input_ids;                  // [B, T]
  const int64_t B = ids.size(0), T = ids.size(1);
  // Position t >= 1 of row b reads hidden[b, t - 1]; only the positions the mask keeps.
  at::Tensor keep = torch::ones({B, T}, ids.options().dtype(torch::kBool));
  keep.narrow(1, 0, 1).fill_(false);
  if (mask.defined()) {
    RUDDER_CHECK(mask.sizes() == ids.sizes(), "score mask ", mask.sizes(), " must match ids ",
                 ids.sizes());
    keep = keep & (mask.to(ids.device()) != 0);
  }
  if (B * T * model.spec().vocab_size <= options.chunk_elements)
    return whole_logit_scores(model, hidden, ids, keep, options.entropy);
  return kept_position_scores(model, hidden, ids, keep, options);
}

at::Tensor sequence_logprobs(CausalLM& model, const ForwardInput& input,
                             const at::Tensor& loss_mask, bool average) {
  const at::Tensor mask = loss_mask.to(input.input_ids.device());
  const at::Tensor per_token = score_tokens(model, input, mask).logprobs;  // [B, T]
  return average ? masked_row_mean(per_token, mask) : masked_sum(per_token, mask);
}

}  // namespace rudder::models
