#include "models/decoder.h"

#include <cmath>
#include <functional>
#include <limits>
#include <utility>

#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

#include "core/error.h"
#include "models/causal_lm.h"
#include "models/chunked_logprobs.h"
#include "models/detail/decode_attention.h"
#include "models/detail/llama_step.h"
#include "models/detail/packed_matmul.h"
#include "models/detail/small_matmul.h"
#include "models/detail/step_graphs.h"
#include "models/lora.h"

namespace rudder::models {

struct DecoderWeights::Impl {
  // A projection's weight: `dense` [out, in] as nn.Linear keeps it, or, when DecoderWeights is
  // asked to pack float32 weights on a CPU with AVX-512, `packed` for detail::PackedMatrix's
  // kernel instead (`dense` is then freed).
  struct Weight {
    Weight() = default;
    Weight(at::Tensor w) : dense(std::move(w)) {}  // implicit: read_* assign [out, in] tensors
    void pack() {
      packed = detail::PackedMatrix(dense);
      dense = at::Tensor();
    }
    at::Tensor dense;
    detail::PackedMatrix packed;
  };
  ModelSpec spec;
  struct Layer {
    at::Tensor norm1_w, norm1_b;  // GPT-2's LayerNorms (Llama's RMSNorm weights are folded
    at::Tensor norm2_w, norm2_b;  // into the projection that follows each norm)
    // Projections (see Weight); fused ones stacked.
    Weight qkv_w;   // [(H + 2 Hkv) D, hidden]: q, k and v stacked
    Weight o_w;     // [hidden, H D]
    Weight up_w;    // Llama: gate and up stacked [2 I, hidden]; GPT-2: c_fc
    Weight down_w;  // [hidden, I]
    at::Tensor qkv_b, o_b, up_b, down_b;
  };
  std::vector<Layer> layers;
  at::Tensor embed;             // [vocab, hidden]
  at::Tensor positions;         // GPT-2's learned positions [max_positions, hidden]
  at::Tensor final_w, final_b;  // GPT-2's final LayerNorm
  Weight head;                  // [vocab, hidden]
  // RoPE (Su et al. 2021) as complex rotations [max_positions, D/2] (complex float). The q and
  // k projections' output rows are permuted within each head from HF's half-split layout
  // (pairs i, i + D/2) to interleaved pairs (2i, 2i + 1), so that rotating is one complex
  // multiply; attention only takes dot products of q with k, which the permutation keeps.
  at::Tensor rope;
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

 private:
  TensorMap tensors_;
};

// Rows (outputs) of a q or k projection [heads * D, ...] reordered from half-split to
// interleaved pairs within each head.
at::Tensor interleave_heads(const at::Tensor& rows, int64_t head_dim) {
  const int64_t half = head_dim / 2;
  std::vector<int64_t> order;
  for (int64_t h = 0; h < rows.size(0) / head_dim; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      order.push_back(h * head_dim + i);
      order.push_back(h * head_dim + half + i);
    }
  }
  return rows.index_select(0, torch::tensor(order).to(rows.device()));
}

// [out, in] Linear weights stacked, with an RMSNorm weight [in] folded in.
at::Tensor fused(const std::vector<at::Tensor>& parts, const at::Tensor& norm_weight) {
  at::Tensor w = torch::cat(parts);
  if (norm_weight.defined()) w = w * norm_weight;
  return w.contiguous();
}

void read_llama(const WeightReader& w, Impl* out) {
  const ModelSpec& s = out->spec;
  const int64_t D = s.head_dim;
  out->embed = w.get("model.embed_tokens.weight");
  for (int64_t i = 0; i < s.num_layers; ++i) {
    const std::string p = str("model.layers.", i, ".");
    const std::string a = p + "self_attn.";
    Impl::Layer l;
    const at::Tensor norm1 = w.get(p + "input_layernorm.weight");
    l.qkv_w = fused({interleave_heads(w.get(a + "q_proj.weight"), D),
                     interleave_heads(w.get(a + "k_proj.weight"), D), w.get(a + "v_proj.weight")},
                    norm1);
    if (s.qkv_bias) {
      l.qkv_b =
          torch::cat({interleave_heads(w.get(a + "q_proj.bias"), D),
                      interleave_heads(w.get(a + "k_proj.bias"), D), w.get(a + "v_proj.bias")});
    }
    l.o_w = fused({w.get(a + "o_proj.weight")}, {});
    l.o_b = w.maybe(a + "o_proj.bias");
    l.up_w = fused({w.get(p + "mlp.gate_proj.weight"), w.get(p + "mlp.up_proj.weight")},
                   w.get(p + "post_attention_layernorm.weight"));
    l.down_w = fused({w.get(p + "mlp.down_proj.weight")}, {});
    out->layers.push_back(std::move(l));
  }
  out->head = fused({s.tie_word_embeddings ? out->embed : w.get("lm_head.weight")},
                    w.get("model.norm.weight"));
  const at::Tensor inv_freq =
      torch::pow(s.rope_theta, -torch::arange(0, D / 2, torch::kDouble) * 2.0 / D)
          .to(torch::kFloat);
  const at::Tensor angles = torch::arange(s.max_positions, torch::kFloat).unsqueeze(-1) * inv_freq;
  out->rope = torch::polar(torch::ones_like(angles), angles).to(out->embed.device());
}

void read_gpt2(const WeightReader& w, Impl* out) {
  out->embed = w.get("transformer.wte.weight");
  out->positions = w.get("transformer.wpe.weight");
  for (int64_t i = 0; i < out->spec.num_layers; ++i) {
    const std::string p = str("transformer.h.", i, ".");
    Impl::Layer l;  // Conv1D weights are [in, out]: transposed to [out, in]
    l.norm1_w = w.get(p + "ln_1.weight");
    l.norm1_b = w.get(p + "ln_1.bias");
    l.qkv_w = w.get(p + "attn.c_attn.weight").t().contiguous();
    l.qkv_b = w.get(p + "attn.c_attn.bias");
    l.o_w = w.get(p + "attn.c_proj.weight").t().contiguous();
    l.o_b = w.get(p + "attn.c_proj.bias");
    l.norm2_w = w.get(p + "ln_2.weight");
    l.norm2_b = w.get(p + "ln_2.bias");
    l.up_w = w.get(p + "mlp.c_fc.weight").t().contiguous();
    l.up_b = w.get(p + "mlp.c_fc.bias");
    l.down_w = w.get(p + "mlp.c_proj.weight").t().contiguous();
    l.down_b = w.get(p + "mlp.c_proj.bias");
    out->layers.push_back(std::move(l));
  }
  out->final_w = w.get("transformer.ln_f.weight");
  out->final_b = w.get("transformer.ln_f.bias");
  out->head = out->embed;
}

// Llama's RMSNorm without its weight (folded into the next projection): x * rsqrt(mean(x^2) +
// eps), computed in float32. GPT-2's LayerNorm.
at::Tensor norm(const Impl& w, const at::Tensor& x, const at::Tensor& weight,
                const at::Tensor& bias) {
  if (w.spec.architecture == Architecture::kGpt2) {
    return at::layer_norm(x, {w.spec.hidden_size}, weight, bias, w.spec.norm_eps);
  }
  if (x.scalar_type() == at::kFloat) {
    return x * x.pow(2).mean(-1, true).add_(w.spec.norm_eps).rsqrt_();
  }
  const at::Tensor x32 = x.to(at::kFloat);
  return (x32 * x32.pow(2).mean(-1, true).add_(w.spec.norm_eps).rsqrt_()).to(x.scalar_type());
}

// x [N, in] times weight [out, in] transposed (+ bias), added to `residual` when defined.
at::Tensor project(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                   const at::Tensor& residual = {}) {
  at::Tensor y;
  if (detail::small_matmul_applies(x, weight)) {
    y = detail::small_matmul(x, weight, residual);
  } else {
    y = residual.defined() ? at::addmm(residual, x, weight.t()) : at::mm(x, weight.t());
  }
  if (bias.defined()) y.add_(bias);
  return y;
}

at::Tensor project(const at::Tensor& x, const Impl::Weight& weight, const at::Tensor& bias,
                   const at::Tensor& residual = {}) {
  if (!weight.packed.defined()) return project(x, weight.dense, bias, residual);
  at::Tensor y = weight.packed.matmul(x, residual);
  if (bias.defined()) y.add_(bias);
  return y;
}

// Rotates the q and k heads `qk` [N, heads, D] (interleaved pairs) in place by `rope` [N, 1,
// D/2] (complex).
void rotate(const at::Tensor& qk, const at::Tensor& rope) {
  const auto sizes = qk.sizes();
  const std::vector<int64_t> pairs = {sizes[0], sizes[1], sizes[2] / 2, 2};
  if (qk.scalar_type() == at::kFloat) {
    at::view_as_complex(qk.view(pairs)).mul_(rope);
    return;
  }
  const at::Tensor rotated = at::view_as_complex(qk.to(at::kFloat).view(pairs)) * rope;
  qk.copy_(at::view_as_real(rotated).view(sizes));
}

// Attention of one layer: given q [N, H, D] and kv [N, 2, Hkv, D] (the new keys and values of
// the N tokens), writes kv into the cache and returns the attention output [N, H D].
using AttendFn = std::function<at::Tensor(size_t layer, const at::Tensor& q, const at::Tensor& kv)>;

// The transformer over N tokens `x` [N, hidden] at positions `pos` [N]; returns the final
// norm's output [N, hidden].
at::Tensor run_layers(const Impl& w, at::Tensor x, const at::Tensor& pos, const AttendFn& attend) {
  const ModelSpec& s = w.spec;
  const int64_t N = x.size(0), H = s.num_heads, Hkv = s.num_kv_heads, D = s.head_dim;
  const bool llama = s.architecture == Architecture::kLlama;
  const at::Tensor rope = llama ? w.rope.index_select(0, pos).unsqueeze(1) : at::Tensor();
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const Impl::Layer& l = w.layers[i];
    const at::Tensor qkv =
        project(norm(w, x, l.norm1_w, l.norm1_b), l.qkv_w, l.qkv_b).view({N, H + 2 * Hkv, D});
    if (llama) rotate(qkv.narrow(1, 0, H + Hkv), rope);
    const at::Tensor out =
        attend(i, qkv.narrow(1, 0, H), qkv.narrow(1, H, 2 * Hkv).view({N, 2, Hkv, D}));
    x = project(out, l.o_w, l.o_b, x);
    const at::Tensor h = norm(w, x, l.norm2_w, l.norm2_b);
    at::Tensor act;
    if (llama) {
      const at::Tensor gate_up = project(h, l.up_w, at::Tensor());  // [N, 2 I]
      const int64_t inner = s.intermediate_size;
      act = at::silu(gate_up.narrow(1, 0, inner)).mul_(gate_up.narrow(1, inner, inner));
    } else {
      act = at::gelu(project(h, l.up_w, l.up_b), "tanh");  // gelu_new
    }
    x = project(act, l.down_w, l.down_b, x);
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

// A decode step's masks, [n Hkv, 1, window] in the dtype of `options`: row b (one per kv head)
// sees keys 0..pos[b], its new token's included, and none beyond.
at::Tensor step_bias(const at::Tensor& pos, int64_t window, int64_t kv_heads,
                     const at::TensorOptions& options) {
  const int64_t n = pos.size(0);
  const at::Tensor beyond = torch::arange(window, pos.options()).unsqueeze(0) > pos.unsqueeze(1);
  return torch::zeros({n, 1, window}, options.dtype(torch::kFloat))
      .masked_fill_(beyond.unsqueeze(1), -std::numeric_limits<float>::max())
      .expand({n, kv_heads, window})
      .reshape({n * kv_heads, 1, window})
      .to(options.dtype());
}

// Where a decode step writes rows 0..n-1's keys and values in a layer's cache [slots, Hkv, 2,
// max_length, D]: indices that broadcast to [n, Hkv, 2].
struct StepIndex {
  at::Tensor slot, head, kv, pos;  // [n, 1, 1], [1, Hkv, 1], [1, 1, 2], [n, 1, 1]
};

// Stores the new keys and values `kv` [n, 2, Hkv, D] of a step at each row's position.
void write_step_kv(at::Tensor& cache, const at::Tensor& kv, const StepIndex& at) {
  cache.index_put_({at.slot, at.head, at.kv, at.pos}, kv.permute({0, 2, 1, 3}));
}

// Attention of a step's queries q [n, H, D] (rows = slots 0..n-1) over keys 0..window-1 of
// their slots in `cache`, masked by `bias` (step_bias); returns [n, H D].
at::Tensor attend_window(const at::Tensor& cache, const at::Tensor& q, const at::Tensor& bias,
                         int64_t window, double scale) {
  const int64_t n = q.size(0), Hkv = cache.size(1), D = cache.size(4), G = q.size(1) / Hkv;
  const at::Tensor live = cache.narrow(0, 0, n).narrow(3, 0, window);
  const at::Tensor k3 = live.select(2, 0).view({n * Hkv, window, D});
  const at::Tensor v3 = live.select(2, 1).view({n * Hkv, window, D});
  const at::Tensor scores =
      at::baddbmm(bias, q.reshape({n * Hkv, G, D}), k3.transpose(1, 2), 1.0, scale);
  return at::bmm(attention_probs(scores), v3).view({n, Hkv * G * D});
}

}  // namespace

DecoderWeights::DecoderWeights(const CausalLM& model, bool pack) : impl_(std::make_unique<Impl>()) {
  torch::NoGradGuard no_grad;
  impl_->spec = model.spec();
  const WeightReader reader(merged_state_dict(model));
  if (impl_->spec.architecture == Architecture::kLlama) {
    read_llama(reader, impl_.get());
  } else {
    read_gpt2(reader, impl_.get());
  }
  const at::Tensor& e = impl_->embed;
  packed_ =
      pack && e.is_cpu() && e.scalar_type() == at::kFloat && detail::PackedMatrix::supported();
  if (packed_) {
    for (Impl::Layer& l : impl_->layers) {
      for (Impl::Weight* w : {&l.qkv_w, &l.o_w, &l.up_w, &l.down_w}) w->pack();
    }
    // GPT-2's head is its embedding itself, which stays; a packed copy would only add memory.
    if (!impl_->head.dense.is_same(impl_->embed)) impl_->head.pack();
  }
}

DecoderWeights::~DecoderWeights() = default;

const ModelSpec& DecoderWeights::spec() const { return impl_->spec; }

at::TensorOptions DecoderWeights::options() const { return impl_->embed.options(); }

// Per layer [slots, Hkv, 2, max_length, D]: keys at [:, :, 0], values at [:, :, 1], so that one
// write stores both and [n, Hkv] of either view as one batch dimension for bmm.
struct Decoder::Cache {
  std::vector<at::Tensor> kv;
  at::Tensor slot_index, head_index, kv_index;  // [slots, 1, 1], [1, Hkv, 1], [1, 1, 2]
  // The fused step's buffers, [slots, ...], allocated by its first call and reused after.
  at::Tensor x, h;  // [slots, hidden]: the residual stream, its norm
  at::Tensor qkv;   // [slots, (H + 2 Hkv) D]
  at::Tensor attn;  // [slots, H D]
  at::Tensor up;    // [slots, 2 I]: gate and up
  at::Tensor act;   // [slots, I]
  // The static step's state on the weights' device, allocated by its first call: the tokens it
  // appends, the slots' lengths (current only while `lengths_current`; the host's lengths_ are
  // the truth, and every change outside the static step leaves these stale), the logits it
  // writes, and its CUDA graphs.
  at::Tensor ids;      // [slots] int64
  at::Tensor lengths;  // [slots] int64
  at::Tensor logits;   // [slots, vocab]
  bool lengths_current = false;
  detail::StepGraphs graphs;
};

Decoder::Decoder(std::shared_ptr<const DecoderWeights> weights, int64_t slots, int64_t max_length,
                 StepPath path)
    : weights_(std::move(weights)), slots_(slots), max_length_(max_length), requested_(path) {
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
    cache_->kv.push_back(torch::empty({slots, s.num_kv_heads, 2, max_length, s.head_dim}, options));
  }
  const auto longs = options.dtype(torch::kLong);
  cache_->slot_index = torch::arange(slots, longs).view({slots, 1, 1});
  cache_->head_index = torch::arange(s.num_kv_heads, longs).view({1, s.num_kv_heads, 1});
  cache_->kv_index = torch::arange(2, longs).view({1, 1, 2});
  path_ = resolve(requested_);
  if (path_ != StepPath::kFused) zero_cache();
}

// Every path but the fused one attends over keys beyond some rows' lengths (masked to weight
// 0) and multiplies their values by that 0, which gives NaN on uninitialised memory: the cache
// starts at zeros for them. The fused kernels read each row's own keys only.
void Decoder::zero_cache() {
  c10::InferenceMode inference;
  for (at::Tensor& layer : cache_->kv) layer.zero_();
}

StepPath Decoder::resolve(StepPath requested) const {
  const Impl& w = weights_->impl();
  const at::Device device = w.embed.device();
  bool fuses = w.spec.architecture == Architecture::kLlama &&
               detail::decode_attention_applies(w.embed, cache_->kv[0]);
  for (const Impl::Layer& l : w.layers) {
    fuses = fuses && !(l.qkv_b.defined() || l.o_b.defined() || l.down_b.defined());
  }
  const bool graphs = device.is_cuda() && detail::StepGraphs::available();
  switch (requested) {
    case StepPath::kAuto:
      if (graphs) return StepPath::kGraphed;
      if (!device.is_cpu()) return StepPath::kStatic;
      return fuses ? StepPath::kFused : StepPath::kEager;
    case StepPath::kFused:
      RUDDER_CHECK(fuses, "the fused decode step needs a float32 Llama without biases on the CPU");
      return requested;
    case StepPath::kGraphed:
      RUDDER_CHECK(graphs,
                   "the graphed decode step needs a CUDA device and a build with CUDA "
                   "graphs (weights on ",
                   device.str(), ")");
      return requested;
    default:
      return requested;
  }
}

Decoder::~Decoder() = default;

size_t Decoder::step_graphs() const { return cache_->graphs.size(); }

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
                   weights->impl().embed.dtype() == weights_->impl().embed.dtype() &&
                   weights->impl().embed.device() == weights_->impl().embed.device(),
               "new weights have other sizes, another dtype or another device than the "
               "decoder's model");
  std::shared_ptr<const DecoderWeights> old = std::exchange(weights_, std::move(weights));
  const StepPath before = path_;
  try {
    path_ = resolve(requested_);
  } catch (...) {
    weights_ = std::move(old);
    throw;
  }
  if (before == StepPath::kFused && path_ != StepPath::kFused) zero_cache();
  cache_->graphs.clear();  // they read the old weights' memory
}

at::Tensor Decoder::prefill(int64_t slot, const at::Tensor& tokens, bool all_logits) {
  c10::InferenceMode inference;
  at::Tensor h = prefill_hidden({slot}, {tokens});  // [T, hidden]
  if (!all_logits) h = h.narrow(0, h.size(0) - 1, 1);
  return project(h, weights_->impl().head, at::Tensor());
}

at::Tensor Decoder::prefill_logprobs(int64_t slot, const at::Tensor& tokens, int64_t first,
                                     const at::Tensor& targets) {
  c10::InferenceMode inference;
  RUDDER_CHECK(targets.dim() == 1 && first >= 0 && first + targets.size(0) <= tokens.size(0),
               "prefill_logprobs: targets ", targets.sizes(), " from position ", first,
               " do not fit in the ", tokens.size(0), " appended tokens");
  const at::Tensor h = prefill_hidden({slot}, {tokens});  // [T, hidden]
  // The head carries the final norm's weight (see fused()), as project() reads it.
  const Impl::Weight& head = weights_->impl().head;
  const at::Tensor rows = h.narrow(0, first, targets.size(0));
  const at::Tensor ids = targets.to(h.device(), torch::kLong);
  if (!head.packed.defined()) return chunked_token_scores(rows, {head.dense, {}}, ids).logprobs;
  // The same chunks of tokens as chunked_token_scores, through the packed head.
  const int64_t chunk =
      std::max<int64_t>(1, ChunkedScoreOptions{}.chunk_elements / head.packed.out_features());
  at::Tensor out = at::empty({rows.size(0)}, rows.options());
  for (int64_t i = 0; i < rows.size(0); i += chunk) {
    const int64_t n = std::min(chunk, rows.size(0) - i);
    const at::Tensor logits = head.packed.matmul(rows.narrow(0, i, n), {});  // [n, vocab]
    out.narrow(0, i, n).copy_(
        logits.log_softmax(-1).gather(1, ids.narrow(0, i, n).unsqueeze(1)).squeeze(1));
  }
  return out;
}

at::Tensor Decoder::prefill(const std::vector<int64_t>& slots,
                            const std::vector<at::Tensor>& tokens) {
  c10::InferenceMode inference;
  const at::Tensor h = prefill_hidden(slots, tokens);  // [sum of T, hidden]
  std::vector<int64_t> last;
  int64_t end = 0;
  for (const auto& t : tokens) last.push_back((end += t.size(0)) - 1);
  const at::Tensor rows = torch::tensor(last).to(h.device());
  return project(h.index_select(0, rows), weights_->impl().head, at::Tensor());
}

at::Tensor Decoder::prefill_hidden(const std::vector<int64_t>& slots,
                                   const std::vector<at::Tensor>& tokens) {
  RUDDER_CHECK(!slots.empty() && slots.size() == tokens.size(),
               "prefill needs one token run per "
               "slot, got ",
               tokens.size(), " for ", slots.size(), " slots");
  std::vector<int64_t> past, length, offset;
  for (size_t j = 0; j < slots.size(); ++j) {
    check_slot(slots[j]);
    for (size_t k = 0; k < j; ++k) {
      RUDDER_CHECK(slots[k] != slots[j], "prefill names slot ", slots[j], " twice");
    }
    RUDDER_CHECK(tokens[j].defined() && tokens[j].dim() == 1 && tokens[j].size(0) > 0,
                 "prefill needs non-empty 1-d token tensors");
    const int64_t T = tokens[j].size(0), total = lengths_[slots[j]] + T;
    RUDDER_CHECK(total <= max_length_, "slot ", slots[j], " would hold ", total,
                 " tokens, beyond the decoder's max_length ", max_length_);
    offset.push_back(offset.empty() ? 0 : offset.back() + length.back());
    past.push_back(lengths_[slots[j]]);
    length.push_back(T);
  }
  const Impl& w = weights_->impl();
  const ModelSpec& s = w.spec;
  const int64_t Hkv = s.num_kv_heads, G = s.num_heads / Hkv, D = s.head_dim;
  const auto device = w.embed.device();
  const auto longs = torch::dtype(torch::kLong).device(device);
  std::vector<at::Tensor> ids, positions, biases;
  for (size_t j = 0; j < slots.size(); ++j) {
    const int64_t total = past[j] + length[j];
    ids.push_back(tokens[j].to(device, torch::kLong));
    positions.push_back(torch::arange(past[j], total, longs));
    // Query t (position past + t) sees keys 0..past + t; rows ordered (group, t).
    const at::Tensor causal =
        torch::arange(total, longs).unsqueeze(0) <= positions.back().unsqueeze(1);  // [T, total]
    biases.push_back(torch::zeros({length[j], total}, w.embed.options().dtype(torch::kFloat))
                         .masked_fill_(causal.logical_not(), -std::numeric_limits<float>::max())
                         .repeat({G, 1})  // [G T, total]; every query sees at least key 0
                         .to(w.embed.scalar_type()));
  }
  const at::Tensor pos = torch::cat(positions);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  // Projections run over every run's tokens at once; attention per run, in its own slot.
  auto attend = [&](size_t i, const at::Tensor& q, const at::Tensor& kv) {
    std::vector<at::Tensor> outs;
    for (size_t j = 0; j < slots.size(); ++j) {
      const int64_t T = length[j], total = past[j] + T;
      const at::Tensor cache = cache_->kv[i][slots[j]];  // [Hkv, 2, max_length, D]
      cache.narrow(2, past[j], T).copy_(kv.narrow(0, offset[j], T).permute({2, 1, 0, 3}));
      const at::Tensor q3 = q.narrow(0, offset[j], T)
                                .reshape({T, Hkv, G, D})
                                .permute({1, 2, 0, 3})
                                .reshape({Hkv, G * T, D});
      const at::Tensor k3 = cache.select(1, 0).narrow(1, 0, total);  // [Hkv, total, D]
      const at::Tensor v3 = cache.select(1, 1).narrow(1, 0, total);
      const at::Tensor scores = at::baddbmm(biases[j], q3, k3.transpose(1, 2), 1.0, scale);
      const at::Tensor out = at::bmm(attention_probs(scores), v3);  // [Hkv, G T, D]
      outs.push_back(out.view({Hkv, G, T, D}).permute({2, 0, 1, 3}).reshape({T, Hkv * G * D}));
    }
    return outs.size() == 1 ? outs[0] : torch::cat(outs);
  };
  const at::Tensor h = run_layers(w, embed(w, torch::cat(ids), pos), pos, attend);
  for (size_t j = 0; j < slots.size(); ++j) lengths_[slots[j]] = past[j] + length[j];
  cache_->lengths_current = false;
  return h;
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
  switch (path_) {
    case StepPath::kFused:
      return step_fused(tokens.to(torch::kLong), n);
    case StepPath::kStatic:
    case StepPath::kGraphed:
      return step_static(tokens, n, longest);
    default:
      return step_eager(tokens, n, longest);
  }
}

at::Tensor Decoder::step_eager(const at::Tensor& tokens, int64_t n, int64_t longest) {
  const Impl& w = weights_->impl();
  const ModelSpec& s = w.spec;
  const int64_t Hkv = s.num_kv_heads, G = s.num_heads / Hkv, D = s.head_dim;
  const auto device = w.embed.device();
  const at::Tensor pos = torch::from_blob(lengths_.data(), {n}, torch::kLong)
                             .to(device, /*non_blocking=*/false,
                                 /*copy=*/true);
  const at::Tensor ids = tokens.to(device, torch::kLong);
  // Row b sees keys 0..length(b), its new token included.
  std::vector<int64_t> visible(lengths_.begin(), lengths_.begin() + n);
  for (auto& v : visible) ++v;
  const bool fused = detail::decode_attention_applies(w.embed, cache_->kv[0]);
  const at::Tensor bias = fused ? at::Tensor() : step_bias(pos, longest, Hkv, w.embed.options());
  const StepIndex index{cache_->slot_index.narrow(0, 0, n), cache_->head_index, cache_->kv_index,
                        pos.view({n, 1, 1})};
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  auto attend = [&](size_t i, const at::Tensor& q, const at::Tensor& kv) {
    at::Tensor& cache = cache_->kv[i];
    write_step_kv(cache, kv, index);
    if (fused) return detail::decode_attention(q.reshape({n, Hkv, G, D}), cache, visible, scale);
    return attend_window(cache, q, bias, longest, scale);
  };
  const at::Tensor h = run_layers(w, embed(w, ids, pos), pos, attend);  // [n, hidden]
  for (int64_t b = 0; b < n; ++b) ++lengths_[b];
  cache_->lengths_current = false;
  return project(h, w.head, at::Tensor());
}

namespace {

// y [M, N] = x [M, K] weight [N, K]^T, plus y's own values when `accumulate`; y and x are
// contiguous (float32 where the weight is packed or small_matmul applies).
void linear_into(const at::Tensor& x, const Impl::Weight& w, at::Tensor y, bool accumulate) {
  const at::Tensor& weight = w.dense;
  if (w.packed.defined()) {
    w.packed.matmul_out(x, y, accumulate);
  } else if (detail::small_matmul_applies(x, weight)) {
    detail::small_matmul_out(x, weight, y, accumulate);
  } else if (accumulate) {
    y.addmm_(x, weight.t());
  } else {
    at::mm_out(y, x, weight.t());
  }
}

// `host` (int64 on the CPU) copied into `device_buffer` without waiting: through pinned memory
// when the buffer is on a CUDA device (the staging copy is freed once the transfer is done).
void copy_from_host(at::Tensor device_buffer, const at::Tensor& host) {
  if (device_buffer.is_cuda() && host.is_cpu()) {
    device_buffer.copy_(host.contiguous().pin_memory(), /*non_blocking=*/true);
  } else {
    device_buffer.copy_(host);
  }
}

// The window of keys a static step attends: the longest row's, rounded up to a power of two
// (at least 16, at most max_length), so that steps share a few shapes.
int64_t key_window(int64_t longest, int64_t max_length) {
  int64_t window = 16;
  while (window < longest) window *= 2;
  return std::min(window, max_length);
}

}  // namespace

at::Tensor Decoder::step_static(const at::Tensor& tokens, int64_t n, int64_t longest) {
  Cache& c = *cache_;
  const Impl& w = weights_->impl();
  if (!c.ids.defined()) {
    const auto longs = w.embed.options().dtype(torch::kLong);
    c.ids = torch::zeros({slots_}, longs);
    c.lengths = torch::zeros({slots_}, longs);
    c.logits = torch::empty({slots_, w.spec.vocab_size}, w.embed.options());
    c.lengths_current = false;
  }
  if (!c.lengths_current) {
    copy_from_host(c.lengths, torch::from_blob(lengths_.data(), {slots_}, torch::kLong));
  }
  copy_from_host(c.ids.narrow(0, 0, n), tokens.to(torch::kLong));
  const int64_t window = key_window(longest, max_length_);
  c.lengths_current = false;  // until the step has run
  if (path_ == StepPath::kGraphed) {
    c.graphs.run(w.embed.device().index(), {n, window},
                 [this, n, window] { static_step(n, window); });
  } else {
    static_step(n, window);
  }
  for (int64_t b = 0; b < n; ++b) ++lengths_[b];
  c.lengths_current = true;
  return c.logits.narrow(0, 0, n).clone();
}

// The static step proper: reads Cache::ids and Cache::lengths of rows 0..n-1, writes their keys
// and values, their logits into Cache::logits and their lengths plus one, all on the device and
// in shapes fixed by (n, window), so that a CUDA graph can capture it.
void Decoder::static_step(int64_t n, int64_t window) {
  Cache& c = *cache_;
  const Impl& w = weights_->impl();
  const int64_t D = w.spec.head_dim;
  const at::Tensor pos = c.lengths.narrow(0, 0, n);
  const at::Tensor bias = step_bias(pos, window, w.spec.num_kv_heads, w.embed.options());
  const StepIndex index{c.slot_index.narrow(0, 0, n), c.head_index, c.kv_index,
                        pos.view({n, 1, 1})};
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  auto attend = [&](size_t i, const at::Tensor& q, const at::Tensor& kv) {
    write_step_kv(c.kv[i], kv, index);
    return attend_window(c.kv[i], q, bias, window, scale);
  };
  const at::Tensor ids = c.ids.narrow(0, 0, n);
  const at::Tensor h = run_layers(w, embed(w, ids, pos), pos, attend);  // [n, hidden]
  linear_into(h, w.head, c.logits.narrow(0, 0, n), false);
  pos.add_(1);
}

// run_layers and the head for one token per slot 0..n-1 of a float32 Llama on the CPU, with
// every intermediate in buffers kept across steps and the per-row operations done in place:
// the step allocates its logits only.
at::Tensor Decoder::step_fused(const at::Tensor& ids, int64_t n) {
  const Impl& w = weights_->impl();
  const ModelSpec& s = w.spec;
  const int64_t H = s.num_heads, Hkv = s.num_kv_heads, D = s.head_dim, I = s.intermediate_size;
  const int64_t hidden = s.hidden_size, width = (H + 2 * Hkv) * D;
  Cache& c = *cache_;
  if (!c.x.defined()) {
    const auto options = w.embed.options();
    c.x = torch::empty({slots_, hidden}, options);
    c.h = torch::empty({slots_, hidden}, options);
    c.qkv = torch::empty({slots_, width}, options);
    c.attn = torch::empty({slots_, H * D}, options);
    c.up = torch::empty({slots_, 2 * I}, options);
    c.act = torch::empty({slots_, I}, options);
  }
  at::Tensor x = c.x.narrow(0, 0, n), h = c.h.narrow(0, 0, n);
  at::Tensor qkv = c.qkv.narrow(0, 0, n), attn = c.attn.narrow(0, 0, n);
  at::Tensor up = c.up.narrow(0, 0, n), act = c.act.narrow(0, 0, n);
  at::index_select_out(x, w.embed, 0, ids);
  const std::vector<int64_t> pos(lengths_.begin(), lengths_.begin() + n);
  std::vector<int64_t> visible(pos);
  for (auto& v : visible) ++v;
  const auto eps = static_cast<float>(s.norm_eps);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  const float* rope = reinterpret_cast<const float*>(w.rope.data_ptr());
  float* qkv_data = qkv.data_ptr<float>();
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const Impl::Layer& l = w.layers[i];
    detail::rms_norm_rows(x.data_ptr<float>(), n, hidden, eps, h.data_ptr<float>());
    linear_into(h, l.qkv_w, qkv, false);
    detail::rope_rows(qkv_data, n, width, H + Hkv, D, rope, pos);
    detail::write_kv_rows(qkv_data + H * D, n, width, c.kv[i], pos);
    detail::decode_attention_into(qkv_data, width, n, H / Hkv, c.kv[i], visible, scale,
                                  attn.data_ptr<float>());
    linear_into(attn, l.o_w, x, true);
    detail::rms_norm_rows(x.data_ptr<float>(), n, hidden, eps, h.data_ptr<float>());
    linear_into(h, l.up_w, up, false);
    at::silu_out(act, up.narrow(1, 0, I)).mul_(up.narrow(1, I, I));
    linear_into(act, l.down_w, x, true);
  }
  detail::rms_norm_rows(x.data_ptr<float>(), n, hidden, eps, h.data_ptr<float>());
  for (int64_t b = 0; b < n; ++b) ++lengths_[b];
  c.lengths_current = false;
  return project(h, w.head, at::Tensor());
}

void Decoder::copy(int64_t src, int64_t dst) {
  check_slot(src);
  check_slot(dst);
  if (src == dst) return;
  const int64_t len = lengths_[src];
  if (len > 0) {
    c10::InferenceMode inference;
    for (const at::Tensor& layer : cache_->kv) {
      layer[dst].narrow(2, 0, len).copy_(layer[src].narrow(2, 0, len));
    }
  }
  lengths_[dst] = len;
  cache_->lengths_current = false;
}

void Decoder::clear(int64_t slot) { truncate(slot, 0); }

void Decoder::truncate(int64_t slot, int64_t length) {
  check_slot(slot);
  RUDDER_CHECK(length >= 0 && length <= lengths_[slot], "slot ", slot, " holds ", lengths_[slot],
               " tokens; cannot truncate to ", length);
  lengths_[slot] = length;
  cache_->lengths_current = false;
}

}  // namespace rudder::models
