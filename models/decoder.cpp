#include "models/decoder.h"

#include <cmath>
#include <functional>
#include <limits>

#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

#include "core/error.h"
#include "models/causal_lm.h"
#include "models/lora.h"

namespace rudder::models {

struct DecoderWeights::Impl {
  ModelSpec spec;
  struct Layer {
    at::Tensor norm1_w, norm1_b;  // the biases are GPT-2's LayerNorm ones
    at::Tensor qkv_w, qkv_b;      // [(H + 2 Hkv) D, hidden]: q, k and v stacked
    at::Tensor o_w, o_b;          // [hidden, H D]
    at::Tensor norm2_w, norm2_b;
    at::Tensor up_w, up_b;      // Llama: gate and up stacked [2 I, hidden]; GPT-2: c_fc [I, hidden]
    at::Tensor down_w, down_b;  // [hidden, I]
  };
  std::vector<Layer> layers;
  at::Tensor embed;      // [vocab, hidden]
  at::Tensor positions;  // GPT-2's learned positions [max_positions, hidden]
  at::Tensor final_w, final_b;
  at::Tensor head;  // [vocab, hidden]
  // RoPE (Su et al. 2021) per position [max_positions, D], HF's half-split layout; rope_sin has
  // its first half negated so that rotate_half(x) * sin == cat(x2, x1) * rope_sin.
  at::Tensor rope_cos, rope_sin;
};

namespace {

using core::str;
using Impl = DecoderWeights::Impl;

class WeightReader {
 public:
  explicit WeightReader(TensorMap tensors) : tensors_(std::move(tensors)) {}
  at::Tensor get(const std::string& name) const {
    const auto it = tensors_.find(name);
    RUDDER_ASSERT(it != tensors_.end(), "the model has no tensor '", name, "'");
    return it->second.detach().clone();
  }
  at::Tensor maybe(const std::string& name) const {
    return tensors_.count(name) ? get(name) : at::Tensor();
  }
  // GPT-2's Conv1D stores [in, out]; the decoder multiplies by [out, in] transposed.
  at::Tensor conv1d(const std::string& name) const { return get(name).t().contiguous(); }

 private:
  TensorMap tensors_;
};

void read_llama(const WeightReader& w, Impl* out) {
  const ModelSpec& s = out->spec;
  out->embed = w.get("model.embed_tokens.weight");
  for (int64_t i = 0; i < s.num_layers; ++i) {
    const std::string p = str("model.layers.", i, ".");
    const std::string a = p + "self_attn.";
    Impl::Layer l;
    l.norm1_w = w.get(p + "input_layernorm.weight");
    l.qkv_w = torch::cat(
        {w.get(a + "q_proj.weight"), w.get(a + "k_proj.weight"), w.get(a + "v_proj.weight")});
    if (s.qkv_bias) {
      l.qkv_b = torch::cat(
          {w.get(a + "q_proj.bias"), w.get(a + "k_proj.bias"), w.get(a + "v_proj.bias")});
    }
    l.o_w = w.get(a + "o_proj.weight");
    l.o_b = w.maybe(a + "o_proj.bias");
    l.norm2_w = w.get(p + "post_attention_layernorm.weight");
    l.up_w = torch::cat({w.get(p + "mlp.gate_proj.weight"), w.get(p + "mlp.up_proj.weight")});
    l.down_w = w.get(p + "mlp.down_proj.weight");
    out->layers.push_back(std::move(l));
  }
  out->final_w = w.get("model.norm.weight");
  out->head = s.tie_word_embeddings ? out->embed : w.get("lm_head.weight");

  const int64_t half = s.head_dim / 2;
  const at::Tensor inv_freq =
      torch::pow(s.rope_theta, -torch::arange(0, half, torch::kDouble) * 2.0 / s.head_dim)
          .to(torch::kFloat);
  const at::Tensor angles = torch::arange(s.max_positions, torch::kFloat).unsqueeze(-1) * inv_freq;
  const at::Tensor emb = torch::cat({angles, angles}, -1);  // [max_positions, D]
  const at::Tensor sin = emb.sin();
  out->rope_cos = emb.cos().to(out->embed.options());
  out->rope_sin =
      torch::cat({-sin.narrow(1, 0, half), sin.narrow(1, half, half)}, 1).to(out->embed.options());
}

void read_gpt2(const WeightReader& w, Impl* out) {
  out->embed = w.get("transformer.wte.weight");
  out->positions = w.get("transformer.wpe.weight");
  for (int64_t i = 0; i < out->spec.num_layers; ++i) {
    const std::string p = str("transformer.h.", i, ".");
    Impl::Layer l;
    l.norm1_w = w.get(p + "ln_1.weight");
    l.norm1_b = w.get(p + "ln_1.bias");
    l.qkv_w = w.conv1d(p + "attn.c_attn.weight");
    l.qkv_b = w.get(p + "attn.c_attn.bias");
    l.o_w = w.conv1d(p + "attn.c_proj.weight");
    l.o_b = w.get(p + "attn.c_proj.bias");
    l.norm2_w = w.get(p + "ln_2.weight");
    l.norm2_b = w.get(p + "ln_2.bias");
    l.up_w = w.conv1d(p + "mlp.c_fc.weight");
    l.up_b = w.get(p + "mlp.c_fc.bias");
    l.down_w = w.conv1d(p + "mlp.c_proj.weight");
    l.down_b = w.get(p + "mlp.c_proj.bias");
    out->layers.push_back(std::move(l));
  }
  out->final_w = w.get("transformer.ln_f.weight");
  out->final_b = w.get("transformer.ln_f.bias");
  out->head = out->embed;
}

// RMSNorm as CausalLM computes it: w * x * rsqrt(mean(x^2) + eps), in float32.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  const at::Tensor x32 = x.to(at::kFloat);
  const at::Tensor scale = x32.pow(2).mean(-1, true).add_(eps).rsqrt_();
  return w * (x32 * scale).to(x.scalar_type());
}

at::Tensor norm(const Impl& w, const at::Tensor& x, const at::Tensor& weight,
                const at::Tensor& bias) {
  if (w.spec.architecture == Architecture::kLlama) return rms_norm(x, weight, w.spec.norm_eps);
  return at::layer_norm(x, {w.spec.hidden_size}, weight, bias, w.spec.norm_eps);
}

// x [N, in] times weight [out, in] transposed (+ bias), added to `residual` when it is defined.
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                  const at::Tensor& residual = {}) {
  at::Tensor y = residual.defined() ? at::addmm(residual, x, weight.t()) : at::mm(x, weight.t());
  if (bias.defined()) y.add_(bias);
  return y;
}

// x [N, heads, D] rotated by cos/sin [N, 1, D].
at::Tensor rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  const at::Tensor swapped = at::cat({x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return (x * cos).add_(swapped * sin);
}

// Attention of one layer: given q [N, H, D] and the new k, v [N, Hkv, D] of the N tokens, writes
// k and v into the cache and returns the attention output [N, H D].
using AttendFn = std::function<at::Tensor(size_t layer, const at::Tensor& q, const at::Tensor& k,
                                          const at::Tensor& v)>;

// The transformer over N tokens `x` [N, hidden] at positions `pos` [N]; returns the final
// norm's output [N, hidden].
at::Tensor run_layers(const Impl& w, at::Tensor x, const at::Tensor& pos, const AttendFn& attend) {
  const ModelSpec& s = w.spec;
  const int64_t N = x.size(0), H = s.num_heads, Hkv = s.num_kv_heads, D = s.head_dim;
  const bool llama = s.architecture == Architecture::kLlama;
  at::Tensor cos, sin;
  if (llama) {
    cos = w.rope_cos.index_select(0, pos).unsqueeze(1);  // [N, 1, D]
    sin = w.rope_sin.index_select(0, pos).unsqueeze(1);
  }
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const Impl::Layer& l = w.layers[i];
    const at::Tensor qkv =
        linear(norm(w, x, l.norm1_w, l.norm1_b), l.qkv_w, l.qkv_b).view({N, H + 2 * Hkv, D});
    at::Tensor qk = qkv.narrow(1, 0, H + Hkv);
    if (llama) qk = rope(qk, cos, sin);
    const at::Tensor out =
        attend(i, qk.narrow(1, 0, H), qk.narrow(1, H, Hkv), qkv.narrow(1, H + Hkv, Hkv));
    x = linear(out, l.o_w, l.o_b, x);
    const at::Tensor h = norm(w, x, l.norm2_w, l.norm2_b);
    at::Tensor act;
    if (llama) {
      const at::Tensor gate_up = at::mm(h, l.up_w.t());  // [N, 2 I]
      const int64_t inner = s.intermediate_size;
      act = at::silu(gate_up.narrow(1, 0, inner)).mul_(gate_up.narrow(1, inner, inner));
    } else {
      act = at::gelu(linear(h, l.up_w, l.up_b), "tanh");  // gelu_new
    }
    x = linear(act, l.down_w, l.down_b, x);
  }
  return norm(w, x, w.final_w, w.final_b);
}

at::Tensor embed(const Impl& w, const at::Tensor& ids, const at::Tensor& pos) {
  at::Tensor x = w.embed.index_select(0, ids);
  if (w.positions.defined()) x = x + w.positions.index_select(0, pos);
  return x;
}

// Softmax over the last dimension of attention scores, in float32 as CausalLM computes it.
at::Tensor attention_probs(const at::Tensor& scores) {
  if (scores.scalar_type() == at::kFloat) return scores.softmax(-1);
  return scores.to(at::kFloat).softmax(-1).to(scores.scalar_type());
}

}  // namespace

DecoderWeights::DecoderWeights(const CausalLM& model) : impl_(std::make_unique<Impl>()) {
  torch::NoGradGuard no_grad;
  impl_->spec = model.spec();
  const WeightReader reader(merged_state_dict(model));
  if (impl_->spec.architecture == Architecture::kLlama) {
    read_llama(reader, impl_.get());
  } else {
    read_gpt2(reader, impl_.get());
  }
}

DecoderWeights::~DecoderWeights() = default;

const ModelSpec& DecoderWeights::spec() const { return impl_->spec; }

// Per layer [slots, Hkv, max_length, D]; `row_base[b][h]` is the flat row of (slot b, head h,
// position 0) in a cache viewed as [slots * Hkv * max_length, D].
struct Decoder::Cache {
  std::vector<at::Tensor> keys, values;
  at::Tensor row_base;  // [slots, Hkv]
};

Decoder::Decoder(std::shared_ptr<const DecoderWeights> weights, int64_t slots, int64_t max_length)
    : weights_(std::move(weights)), slots_(slots), max_length_(max_length) {
  RUDDER_CHECK(weights_ != nullptr, "Decoder needs weights");
  const ModelSpec& s = weights_->spec();
  RUDDER_CHECK(slots > 0, "Decoder slots must be positive, got ", slots);
  RUDDER_CHECK(max_length > 0 && max_length <= s.max_positions, "Decoder max_length must be in 1..",
               s.max_positions, " (the model's positions), got ", max_length);
  c10::InferenceMode inference;
  lengths_.assign(slots, 0);
  cache_ = std::make_unique<Cache>();
  const auto options = weights_->impl().embed.options();
  for (int64_t i = 0; i < s.num_layers; ++i) {
    cache_->keys.push_back(torch::empty({slots, s.num_kv_heads, max_length, s.head_dim}, options));
    cache_->values.push_back(torch::empty_like(cache_->keys.back()));
  }
  const auto longs = options.dtype(torch::kLong);
  cache_->row_base =
      torch::arange(slots * s.num_kv_heads, longs).mul_(max_length).view({slots, s.num_kv_heads});
}

Decoder::~Decoder() = default;

void Decoder::check_slot(int64_t slot) const {
  RUDDER_CHECK(slot >= 0 && slot < slots_, "slot ", slot, " outside 0..", slots_ - 1);
}

int64_t Decoder::length(int64_t slot) const {
  check_slot(slot);
  return lengths_[slot];
}

void Decoder::set_weights(std::shared_ptr<const DecoderWeights> weights) {
  RUDDER_CHECK(weights != nullptr, "Decoder::set_weights needs weights");
  for (int64_t s = 0; s < slots_; ++s) {
    RUDDER_CHECK(lengths_[s] == 0, "weights change only while every slot is empty (slot ", s,
                 " holds ", lengths_[s], " tokens)");
  }
  const ModelSpec &a = weights_->spec(), &b = weights->spec();
  RUDDER_CHECK(a.architecture == b.architecture && a.num_layers == b.num_layers &&
                   a.num_kv_heads == b.num_kv_heads && a.head_dim == b.head_dim &&
                   a.vocab_size == b.vocab_size && a.hidden_size == b.hidden_size &&
                   weights->impl().embed.options().dtype() == weights_->impl().embed.dtype(),
               "new weights have other sizes or another dtype than the decoder's model");
  weights_ = std::move(weights);
}

at::Tensor Decoder::prefill(int64_t slot, const at::Tensor& tokens, bool all_logits) {
  check_slot(slot);
  RUDDER_CHECK(tokens.defined() && tokens.dim() == 1 && tokens.size(0) > 0,
               "prefill needs a non-empty 1-d token tensor");
  const int64_t past = lengths_[slot], T = tokens.size(0), total = past + T;
  RUDDER_CHECK(total <= max_length_, "slot ", slot, " would hold ", total,
               " tokens, beyond the decoder's max_length ", max_length_);
  c10::InferenceMode inference;
  const Impl& w = weights_->impl();
  const ModelSpec& s = w.spec;
  const int64_t Hkv = s.num_kv_heads, G = s.num_heads / Hkv, D = s.head_dim;
  const auto device = w.embed.device();
  const at::Tensor ids = tokens.to(device, torch::kLong);
  const at::Tensor pos = torch::arange(past, total, torch::dtype(torch::kLong).device(device));
  // Query t (position past + t) sees keys 0..past + t; rows ordered (group, t).
  const at::Tensor keys = torch::arange(total, pos.options());
  const at::Tensor causal = keys.unsqueeze(0) <= pos.unsqueeze(1);  // [T, total]
  const at::Tensor bias =
      torch::zeros({T, total}, w.embed.options())
          .masked_fill_(causal.logical_not(), -std::numeric_limits<float>::max())
          .repeat({G, 1});  // [G T, total]
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  Cache& c = *cache_;
  auto attend = [&](size_t i, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
    c.keys[i][slot].narrow(1, past, T).copy_(k.transpose(0, 1));
    c.values[i][slot].narrow(1, past, T).copy_(v.transpose(0, 1));
    const at::Tensor q3 = q.reshape({T, Hkv, G, D}).permute({1, 2, 0, 3}).reshape({Hkv, G * T, D});
    const at::Tensor k3 = c.keys[i][slot].narrow(1, 0, total);  // [Hkv, total, D]
    const at::Tensor scores = at::baddbmm(bias, q3, k3.transpose(1, 2), 1.0, scale);
    const at::Tensor out = at::bmm(attention_probs(scores), c.values[i][slot].narrow(1, 0, total));
    return out.view({Hkv, G, T, D}).permute({2, 0, 1, 3}).reshape({T, Hkv * G * D});
  };
  at::Tensor h = run_layers(w, embed(w, ids, pos), pos, attend);  // [T, hidden]
  lengths_[slot] = total;
  if (!all_logits) h = h.narrow(0, T - 1, 1);
  return at::mm(h, w.head.t());
}

at::Tensor Decoder::step(const at::Tensor& tokens) {
  RUDDER_CHECK(
      tokens.defined() && tokens.dim() == 1 && tokens.size(0) > 0 && tokens.size(0) <= slots_,
      "step needs 1..", slots_, " tokens, one per slot");
  const int64_t n = tokens.size(0);
  int64_t longest = 0;
  for (int64_t b = 0; b < n; ++b) {
    RUDDER_CHECK(lengths_[b] < max_length_, "slot ", b, " is full (", max_length_, " tokens)");
    longest = std::max(longest, lengths_[b] + 1);
  }
  c10::InferenceMode inference;
  const Impl& w = weights_->impl();
  const ModelSpec& s = w.spec;
  const int64_t Hkv = s.num_kv_heads, G = s.num_heads / Hkv, D = s.head_dim;
  const auto device = w.embed.device();
  const at::Tensor pos = torch::from_blob(lengths_.data(), {n}, torch::kLong)
                             .to(device, /*non_blocking=*/false,
                                 /*copy=*/true);
  const at::Tensor ids = tokens.to(device, torch::kLong);
  // Row b sees keys 0..length(b) (its new token included); one bias row per (b, kv head).
  const at::Tensor allowed =
      torch::arange(longest, pos.options()).unsqueeze(0) <= pos.unsqueeze(1);  // [n, longest]
  const at::Tensor bias =
      torch::zeros({n, 1, longest}, w.embed.options())
          .masked_fill_(allowed.logical_not().unsqueeze(1), -std::numeric_limits<float>::max())
          .expand({n, Hkv, longest})
          .reshape({n * Hkv, 1, longest});
  const at::Tensor rows = (cache_->row_base.narrow(0, 0, n) + pos.unsqueeze(1)).view(-1);
  const int64_t flat = slots_ * Hkv * max_length_;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  Cache& c = *cache_;
  auto attend = [&](size_t i, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
    c.keys[i].view({flat, D}).index_copy_(0, rows, k.reshape({n * Hkv, D}));
    c.values[i].view({flat, D}).index_copy_(0, rows, v.reshape({n * Hkv, D}));
    const at::Tensor k3 =
        c.keys[i].narrow(0, 0, n).narrow(2, 0, longest).view({n * Hkv, longest, D});
    const at::Tensor v3 =
        c.values[i].narrow(0, 0, n).narrow(2, 0, longest).view({n * Hkv, longest, D});
    const at::Tensor scores =
        at::baddbmm(bias, q.reshape({n * Hkv, G, D}), k3.transpose(1, 2), 1.0, scale);
    return at::bmm(attention_probs(scores), v3).view({n, Hkv * G * D});
  };
  const at::Tensor h = run_layers(w, embed(w, ids, pos), pos, attend);  // [n, hidden]
  for (int64_t b = 0; b < n; ++b) ++lengths_[b];
  return at::mm(h, w.head.t());
}

void Decoder::copy(int64_t src, int64_t dst) {
  check_slot(src);
  check_slot(dst);
  if (src == dst) return;
  const int64_t len = lengths_[src];
  if (len > 0) {
    c10::InferenceMode inference;
    for (size_t i = 0; i < cache_->keys.size(); ++i) {
      cache_->keys[i][dst].narrow(1, 0, len).copy_(cache_->keys[i][src].narrow(1, 0, len));
      cache_->values[i][dst].narrow(1, 0, len).copy_(cache_->values[i][src].narrow(1, 0, len));
    }
  }
  lengths_[dst] = len;
}

void Decoder::clear(int64_t slot) { truncate(slot, 0); }

void Decoder::truncate(int64_t slot, int64_t length) {
  check_slot(slot);
  RUDDER_CHECK(length >= 0 && length <= lengths_[slot], "slot ", slot, " holds ", lengths_[slot],
               " tokens; cannot truncate to ", length);
  lengths_[slot] = length;
}

}  // namespace rudder::models
