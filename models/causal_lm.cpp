#include "models/causal_lm.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include <torch/torch.h>
#include <torch/version.h>

#include "core/error.h"
#include "core/runtime.h"
#include "models/autocast.h"
#include "models/detail/attention.h"
#include "models/detail/checkpoint.h"
#include "models/detail/fused_elementwise.h"
#include "models/detail/projection.h"

namespace rudder::models {
namespace {

using core::str;
namespace F = torch::nn::functional;

// libtorch's rms_norm (from torch 2.4; one fused kernel each way on CUDA from 2.9) where it
// computes what RMSNormImpl does: float32 input and weight on a GPU (the residual stream under
// autocast). RUDDER_FUSED_NORM=0 in the environment turns it off.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool fused_norm_applies(const at::Tensor& x, const at::Tensor& weight) {
  static const bool enabled = !core::turned_off("RUDDER_FUSED_NORM");
  return enabled && x.is_cuda() && x.scalar_type() == at::kFloat &&
         weight.scalar_type() == at::kFloat;
}
#endif

// RMSNorm (Zhang & Sennrich 2019): w * x * rsqrt(mean(x^2) + eps), computed in float32.
struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t dim, double eps) : eps(eps) {
    weight = register_parameter("weight", torch::ones({dim}));
  }
  at::Tensor forward(const at::Tensor& x) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    if (fused_norm_applies(x, weight)) return at::rms_norm(x, weight.sizes(), weight, eps);
#endif
    const at::Tensor x32 = x.to(torch::kFloat);
    const at::Tensor normed = x32 * torch::rsqrt(x32.pow(2).mean(-1, true) + eps);
    return weight * normed.to(x.scalar_type());
  }
  at::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

using detail::AttentionMemory;
using detail::Projection;

// Llama's nn.Linear ([out, in]) and GPT-2's Conv1D ([in, out]) are both Projections.
Projection linear(int64_t in, int64_t out, bool bias) { return Projection(in, out, bias, false); }
Projection conv1d(int64_t in, int64_t out) { return Projection(in, out, true, true); }

torch::nn::Embedding embedding(int64_t count, int64_t dim) {
  torch::nn::Embedding e(count, dim);
  torch::NoGradGuard no_grad;
  e->weight.normal_(0.0, 0.02);
  return e;
}

// HF's rotate_half: cat(-x2, x1) over the two halves of the last dimension.
at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// One forward's RoPE angles (Su et al. 2021): for Rudder's CUDA kernel where it runs (and no
// cache), their cosines and sines [B, T, D/2] in float32 (a head's two halves share their
// angles); else cos and sin [B, 1, T, D] in the hidden states' dtype, for
// x * cos + rotate_half(x) * sin.
struct RopeTables {
  at::Tensor cos, sin;
  at::Tensor cos_half, sin_half;
  at::ScalarType dtype;  // the hidden states'
};

// x [B, T, heads, D] rotated: [B, heads, T, D]. The kernel's result is in the dtype the
// libtorch ops would give, or bf16 under autocast on CUDA, where every use casts it so (the
// attention kernel, or the products of the blocked path); not with a cache, whose keys keep the
// libtorch ops' dtype.
at::Tensor rotate(const at::Tensor& x, const RopeTables& rope, bool cached) {
  if (rope.cos_half.defined()) {
    RUDDER_ASSERT(!cached, "RoPE's kernel tables with a cache");
    const at::ScalarType dtype = autocast_enabled(c10::DeviceType::CUDA)
                                     ? at::kBFloat16
                                     : at::promote_types(x.scalar_type(), rope.dtype);
    return detail::rope_cuda(x, rope.cos_half, rope.sin_half, dtype).transpose(1, 2);
  }
  const at::Tensor t = x.transpose(1, 2);
  return t * rope.cos + rotate_half(t) * rope.sin;  // HF's half-split layout
}

// Which keys each query may not see, [B, 1, T, past + T] bool: query i sees key j when
// j <= past + i, mask[j] == 1 and, for packed rows, both are in the same segment. One byte per
// pair, a quarter of an additive float bias's memory. For right-padded rows (see
// ForwardInput::right_padded) the causal pairs alone, [1, 1, T, T].
detail::AttentionMask attention_blocked(const ForwardInput& in, int64_t past, int64_t seq,
                                        const at::Device& device) {
  const at::Tensor& mask = in.attention_mask;
  const int64_t total = past + seq;
  RUDDER_CHECK(mask.defined() && mask.dim() == 2 && mask.size(1) == total,
               "attention_mask must be [batch, ", total, "] (past ", past, " + seq ", seq,
               "), got ", mask.defined() ? mask.sizes() : c10::IntArrayRef{});
  const at::Tensor query_pos =
      torch::arange(past, total, torch::TensorOptions().dtype(torch::kLong).device(device));
  const at::Tensor key_pos =
      torch::arange(total, torch::TensorOptions().dtype(torch::kLong).device(device));
  const at::Tensor causal = key_pos.unsqueeze(0) <= query_pos.unsqueeze(1);  // [T, S]
  if (in.right_padded && in.cache == nullptr && !in.segment_ids.defined()) {
    RUDDER_CHECK(!mask.is_cpu() || right_padded(mask),
                 "right_padded is set but an attention_mask row has a real token after padding");
    return {causal.logical_not().view({1, 1, seq, total}), /*causal_only=*/true};
  }
  at::Tensor allowed = causal.unsqueeze(0) & (mask.to(device) != 0).unsqueeze(1);  // [B, T, S]
  if (in.segment_ids.defined()) {
    RUDDER_CHECK(past == 0, "segment_ids (packed rows) cannot be combined with a KV cache");
    RUDDER_CHECK(in.segment_ids.sizes() == in.input_ids.sizes(), "segment_ids ",
                 in.segment_ids.sizes(), " must match input_ids ", in.input_ids.sizes());
    const at::Tensor seg = in.segment_ids.to(device);
    allowed = allowed & (seg.unsqueeze(2) == seg.unsqueeze(1));
  }
  return {allowed.logical_not_().unsqueeze(1)};
}

void append_cache(KVCache* cache, size_t layer, at::Tensor* k, at::Tensor* v) {
  if (cache == nullptr) return;
  if (cache->keys.size() <= layer) {
    cache->keys.resize(layer + 1);
    cache->values.resize(layer + 1);
  }
  if (cache->keys[layer].defined()) {
    *k = torch::cat({cache->keys[layer], *k}, 2);
    *v = torch::cat({cache->values[layer], *v}, 2);
  }
  cache->keys[layer] = *k;
  cache->values[layer] = *v;
}

// ---- Llama family ----------------------------------------------------------------------------

struct LlamaAttentionImpl : torch::nn::Module {
  explicit LlamaAttentionImpl(const ModelSpec& s) : spec(s) {
    q_proj = register_module("q_proj", linear(s.hidden_size, s.num_heads * s.head_dim, s.qkv_bias));
    k_proj =
        register_module("k_proj", linear(s.hidden_size, s.num_kv_heads * s.head_dim, s.qkv_bias));
    v_proj =
        register_module("v_proj", linear(s.hidden_size, s.num_kv_heads * s.head_dim, s.qkv_bias));
    o_proj = register_module("o_proj", linear(s.num_heads * s.head_dim, s.hidden_size, s.o_bias));
  }
  at::Tensor forward(const at::Tensor& x, const RopeTables& rope,
                     const detail::AttentionMask& blocked, KVCache* cache, size_t layer,
                     AttentionMemory memory) {
    const int64_t B = x.size(0), T = x.size(1), D = spec.head_dim;
    // Not with a cache: it would keep v, a view of the joint product, and with it q and k.
    const std::vector<at::Tensor> qkv =
        cache == nullptr ? detail::project_together(x, {q_proj.get(), k_proj.get(), v_proj.get()})
                         : std::vector<at::Tensor>{q_proj(x), k_proj(x), v_proj(x)};
    const bool cached = cache != nullptr;
    const at::Tensor q = rotate(qkv[0].view({B, T, spec.num_heads, D}), rope, cached);  // [B,H,T,D]
    at::Tensor k = rotate(qkv[1].view({B, T, spec.num_kv_heads, D}), rope, cached);  // [B,Hkv,T,D]
    at::Tensor v = qkv[2].view({B, T, spec.num_kv_heads, D}).transpose(1, 2);
    append_cache(cache, layer, &k, &v);
    const at::Tensor out = detail::attend(q, k, v, blocked, memory)
                               .transpose(1, 2)
                               .reshape({B, T, spec.num_heads * D});
    return o_proj(out);
  }
  ModelSpec spec;
  Projection q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
};
TORCH_MODULE(LlamaAttention);

struct LlamaMlpImpl : torch::nn::Module {
  explicit LlamaMlpImpl(const ModelSpec& s) {
    gate_proj = register_module("gate_proj", linear(s.hidden_size, s.intermediate_size, false));
    up_proj = register_module("up_proj", linear(s.hidden_size, s.intermediate_size, false));
    down_proj = register_module("down_proj", linear(s.intermediate_size, s.hidden_size, false));
  }
  at::Tensor forward(const at::Tensor& x) {
    const std::vector<detail::ProjectionImpl*> ps{gate_proj.get(), up_proj.get()};
    if (detail::cuda_kernels_apply(x))
      if (const at::Tensor joined = detail::project_joined(x, ps); joined.defined())
        return down_proj(detail::swiglu_joined_cuda(joined));
    const auto gate_up = detail::project_together(x, ps);
    const at::Tensor& gate = gate_up[0];
    const at::Tensor& up = gate_up[1];
    if (detail::cuda_kernels_apply(gate) && gate.scalar_type() == up.scalar_type())
      return down_proj(detail::swiglu_cuda(gate, up));
    return down_proj(torch::silu(gate) * up);
  }
  Projection gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(LlamaMlp);

struct LlamaLayerImpl : torch::nn::Module {
  explicit LlamaLayerImpl(const ModelSpec& s) {
    self_attn = register_module("self_attn", LlamaAttention(s));
    mlp = register_module("mlp", LlamaMlp(s));
    input_layernorm = register_module("input_layernorm", RMSNorm(s.hidden_size, s.norm_eps));
    post_attention_layernorm =
        register_module("post_attention_layernorm", RMSNorm(s.hidden_size, s.norm_eps));
  }
  LlamaAttention self_attn{nullptr};
  LlamaMlp mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(LlamaLayer);

struct LlamaModelImpl : torch::nn::Module {
  explicit LlamaModelImpl(const ModelSpec& s) {
    embed_tokens = register_module("embed_tokens", embedding(s.vocab_size, s.hidden_size));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < s.num_layers; ++i) layers->push_back(LlamaLayer(s));
    norm = register_module("norm", RMSNorm(s.hidden_size, s.norm_eps));
  }
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(LlamaModel);

// ---- GPT-2 -------------------------------------------------------------------------------------

struct Gpt2AttentionImpl : torch::nn::Module {
  explicit Gpt2AttentionImpl(const ModelSpec& s) : spec(s) {
    c_attn = register_module("c_attn", conv1d(s.hidden_size, 3 * s.hidden_size));
    c_proj = register_module("c_proj", conv1d(s.hidden_size, s.hidden_size));
  }
  at::Tensor forward(const at::Tensor& x, const detail::AttentionMask& blocked, KVCache* cache,
                     size_t layer, AttentionMemory memory) {
    const int64_t B = x.size(0), T = x.size(1), H = spec.num_heads, D = spec.head_dim;
    const auto qkv = c_attn(x).split(spec.hidden_size, -1);
    const at::Tensor q = qkv[0].view({B, T, H, D}).transpose(1, 2);
    at::Tensor k = qkv[1].view({B, T, H, D}).transpose(1, 2);
    at::Tensor v = qkv[2].view({B, T, H, D}).transpose(1, 2);
    append_cache(cache, layer, &k, &v);
    return c_proj(detail::attend(q, k, v, blocked, memory).transpose(1, 2).reshape({B, T, H * D}));
  }
  ModelSpec spec;
  Projection c_attn{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(Gpt2Attention);

struct Gpt2MlpImpl : torch::nn::Module {
  explicit Gpt2MlpImpl(const ModelSpec& s) {
    c_fc = register_module("c_fc", conv1d(s.hidden_size, s.intermediate_size));
    c_proj = register_module("c_proj", conv1d(s.intermediate_size, s.hidden_size));
  }
  // gelu_new: the tanh approximation of GELU (Hendrycks & Gimpel 2016).
  at::Tensor forward(const at::Tensor& x) { return c_proj(torch::gelu(c_fc(x), "tanh")); }
  Projection c_fc{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(Gpt2Mlp);

torch::nn::LayerNorm layer_norm(const ModelSpec& s) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({s.hidden_size}).eps(s.norm_eps));
}

struct Gpt2BlockImpl : torch::nn::Module {
  explicit Gpt2BlockImpl(const ModelSpec& s) {
    ln_1 = register_module("ln_1", layer_norm(s));
    attn = register_module("attn", Gpt2Attention(s));
    ln_2 = register_module("ln_2", layer_norm(s));
    mlp = register_module("mlp", Gpt2Mlp(s));
  }
  torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  Gpt2Attention attn{nullptr};
  Gpt2Mlp mlp{nullptr};
};
TORCH_MODULE(Gpt2Block);

struct Gpt2ModelImpl : torch::nn::Module {
  explicit Gpt2ModelImpl(const ModelSpec& s) {
    wte = register_module("wte", embedding(s.vocab_size, s.hidden_size));
    wpe = register_module("wpe", embedding(s.max_positions, s.hidden_size));
    h = register_module("h", torch::nn::ModuleList());
    for (int64_t i = 0; i < s.num_layers; ++i) h->push_back(Gpt2Block(s));
    ln_f = register_module("ln_f", layer_norm(s));
  }
  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::ModuleList h{nullptr};
  torch::nn::LayerNorm ln_f{nullptr};
};
TORCH_MODULE(Gpt2Model);

}  // namespace

// The family-specific parts; exactly one of llama/gpt2 is set.
class CausalLM::Impl {
 public:
  LlamaModel llama{nullptr};
  Gpt2Model gpt2{nullptr};
  Projection lm_head{nullptr};  // only when not tied
  // RoPE angles position x inv_freq for positions 0..max_positions-1, [max_positions, D/2]
  // (Llama only), made once in float32 whatever the parameters' dtype, and moved to the device
  // of the inputs on first use there; each forward gathers its rows and takes cos and sin.
  at::Tensor rope_angles;
  const at::Tensor& rope_on(const at::Device& device) {
    if (rope_angles.device() != device) rope_angles = rope_angles.to(device);
    return rope_angles;
  }
};

namespace {

// The angle table of RoPE (Su et al. 2021): angles[p, i] = p * theta^(-2i/D), float32 as HF
// computes it (float positions times float inverse frequencies).
at::Tensor rope_angle_table(const ModelSpec& spec) {
  const int64_t half = spec.head_dim / 2;
  const at::Tensor inv_freq =
      torch::pow(spec.rope_theta,
                 -torch::arange(0, half, torch::TensorOptions().dtype(torch::kDouble)) * 2.0 /
                     spec.head_dim)
          .to(torch::kFloat);
  return torch::arange(spec.max_positions, torch::kFloat).unsqueeze(-1) * inv_freq;
}

}  // namespace

bool right_padded(const at::Tensor& attention_mask) {
  RUDDER_CHECK(attention_mask.defined() && attention_mask.dim() == 2,
               "attention_mask must be [batch, seq], got ",
               attention_mask.defined() ? attention_mask.sizes() : c10::IntArrayRef{});
  if (attention_mask.size(1) < 2) return true;
  const at::Tensor real = attention_mask != 0;
  const int64_t T = real.size(1);
  // Real after padding: a row where a later token is real and an earlier one is not.
  return !(real.narrow(1, 1, T - 1) & real.narrow(1, 0, T - 1).logical_not()).any().item<bool>();
}

ForwardInput batch_input(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                         const at::Tensor& position_ids, const at::Device& device) {
  ForwardInput input{input_ids.to(device), attention_mask.to(device), position_ids.to(device)};
  // Asked of the CPU mask only: on a device the question would wait for the device.
  input.right_padded = attention_mask.is_cpu() && right_padded(attention_mask);
  return input;
}

int64_t KVCache::length() const { return keys.empty() || !keys[0].defined() ? 0 : keys[0].size(2); }

CausalLM::CausalLM(const ModelSpec& spec) : spec_(spec), impl_(std::make_unique<Impl>()) {
  validate(spec_);
  if (spec_.architecture == Architecture::kLlama) {
    impl_->llama = register_module("model", LlamaModel(spec_));
    impl_->rope_angles = rope_angle_table(spec_);
    if (!spec_.tie_word_embeddings) {
      impl_->lm_head =
          register_module("lm_head", linear(spec_.hidden_size, spec_.vocab_size, false));
    }
  } else {
    impl_->gpt2 = register_module("transformer", Gpt2Model(spec_));
  }
}

CausalLM::~CausalLM() = default;

at::Tensor CausalLM::forward(const ForwardInput& input) {
  ForwardInput with_head = input;
  with_head.head_follows = true;
  at::Tensor hidden = final_hidden(with_head);  // [B, T, hidden]
  if (input.logits_positions.defined()) {
    const at::Tensor& at_pos = input.logits_positions;  // [B, K]
    RUDDER_CHECK(at_pos.dim() == 2 && at_pos.size(0) == hidden.size(0),
                 "logits_positions must be [batch, k], got ", at_pos.sizes());
    const at::Tensor index = at_pos.to(hidden.device())
                                 .unsqueeze(-1)
                                 .expand({at_pos.size(0), at_pos.size(1), hidden.size(-1)});
    hidden = hidden.gather(1, index);  // [B, K, hidden]
  }
  return project_logits(hidden);
}

at::Tensor CausalLM::project_logits(const at::Tensor& hidden) {
  if (impl_->lm_head) return impl_->lm_head(hidden);
  const at::Tensor& embedding =
      impl_->llama ? impl_->llama->embed_tokens->weight : impl_->gpt2->wte->weight;
  return torch::matmul(hidden, embedding.t());
}

void CausalLM::set_activation_checkpointing(bool on) { checkpoint_layers_ = on; }

bool CausalLM::checkpointing(const KVCache* cache) const {
  return checkpoint_layers_ && cache == nullptr && is_training() && torch::GradMode::is_enabled();
}

OutputHead CausalLM::output_head() {
  if (!impl_->lm_head) {
    return {impl_->llama ? impl_->llama->embed_tokens->weight : impl_->gpt2->wte->weight, {}};
  }
  const detail::ProjectionImpl& p = *impl_->lm_head;
  if (!p.lora_A || p.merged) return {p.weight, p.bias};
  if (p.lora_dropout > 0 && is_training()) return {};
  return {p.weight + p.lora_scaling * torch::mm(p.lora_B->weight, p.lora_A->weight), p.bias};
}

namespace {

// final_hidden's checks of its input. The position bound is checked on CPU tensors only: on a
// device it would need a host sync, and the lookup fails there on its own.
void check_forward_input(const ForwardInput& in, int64_t max_positions) {
  const at::Tensor& ids = in.input_ids;
  RUDDER_CHECK(ids.defined() && ids.dim() == 2, "input_ids must be [batch, seq], got ",
               ids.defined() ? ids.sizes() : c10::IntArrayRef{});
  RUDDER_CHECK(in.position_ids.defined() && in.position_ids.sizes() == ids.sizes(), "position_ids ",
               in.position_ids.defined() ? in.position_ids.sizes() : c10::IntArrayRef{},
               " must match input_ids ", ids.sizes());
  if (in.position_ids.is_cpu()) {
    const int64_t most = in.position_ids.max().item<int64_t>();
    RUDDER_CHECK(most < max_positions, "position id ", most, " beyond the model's ", max_positions,
                 " positions");
  }
}

// How final_hidden runs each layer: checkpointed or not, recording its output in `hidden`
// (ForwardInput::hidden) when given.
struct LayerRunner {
  bool checkpoint;
  std::vector<at::Tensor>* hidden;

  at::Tensor operator()(const detail::CheckpointedFn& layer, const at::Tensor& x) const {
    return record(checkpoint ? detail::checkpoint(layer, x) : layer(x));
  }
  at::Tensor record(at::Tensor x) const {
    if (hidden != nullptr) hidden->push_back(x);
    return x;
  }
};

}  // namespace

at::Tensor CausalLM::final_hidden(const ForwardInput& in) {
  check_forward_input(in, spec_.max_positions);
  const at::Tensor& ids = in.input_ids;  // [B, T]
  KVCache* cache = in.cache;
  const int64_t past = cache != nullptr ? cache->length() : 0;
  const detail::AttentionMask blocked = attention_blocked(in, past, ids.size(1), ids.device());
  // A checkpointed layer's replay keeps no attention probabilities either (they are the bulk of
  // its activations at long sequences); the backward recomputes them a block at a time.
  const LayerRunner run{checkpointing(cache), in.hidden};
  const AttentionMemory memory =
      run.checkpoint ? AttentionMemory::kRecompute : AttentionMemory::kKeepProbabilities;
  if (in.hidden != nullptr) in.hidden->clear();
  const bool sparse_embedding = !impl_->lm_head && in.head_follows;
  auto embed = [&](const torch::nn::Embedding& table) {  // [B, T, hidden]
    return torch::embedding(table->weight, ids, /*padding_idx=*/-1,
                            /*scale_grad_by_freq=*/false, sparse_embedding);
  };
  if (impl_->llama) {
    auto& m = *impl_->llama;
    at::Tensor x = run.record(embed(m.embed_tokens));
    const at::Tensor freqs = impl_->rope_on(ids.device())
                                 .index_select(0, in.position_ids.reshape(-1))
                                 .view({ids.size(0), ids.size(1), -1});  // [B, T, D/2]
    RopeTables rope{{}, {}, {}, {}, x.scalar_type()};
    if (detail::cuda_kernels_apply(x) && cache == nullptr) {
      // Rounded to the hidden states' dtype first, as the tables of the libtorch ops are.
      rope.cos_half = freqs.cos().to(x.scalar_type()).to(at::kFloat).contiguous();
      rope.sin_half = freqs.sin().to(x.scalar_type()).to(at::kFloat).contiguous();
    } else {
      const at::Tensor emb = torch::cat({freqs, freqs}, -1).unsqueeze(1);  // [B, 1, T, D]
      rope.cos = emb.cos().to(x.scalar_type());
      rope.sin = emb.sin().to(x.scalar_type());
    }
    for (size_t i = 0; i < m.layers->size(); ++i) {
      auto layer = m.layers[i]->as<LlamaLayerImpl>();
      x = run(
          [layer, rope, blocked, cache, i, memory](at::Tensor h) {
            h = h + layer->self_attn(layer->input_layernorm(h), rope, blocked, cache, i, memory);
            return h + layer->mlp(layer->post_attention_layernorm(h));
          },
          x);
    }
    return run.record(m.norm(x));
  }
  auto& m = *impl_->gpt2;
  at::Tensor x = run.record(embed(m.wte) + m.wpe(in.position_ids));
  for (size_t i = 0; i < m.h->size(); ++i) {
    auto block = m.h[i]->as<Gpt2BlockImpl>();
    x = run(
        [block, blocked, cache, i, memory](at::Tensor h) {
          h = h + block->attn(block->ln_1(h), blocked, cache, i, memory);
          return h + block->mlp(block->ln_2(h));
        },
        x);
  }
  return run.record(m.ln_f(x));
}

TensorMap CausalLM::state_dict() const {
  TensorMap out;
  for (const auto& item : named_parameters(true)) out.emplace(item.key(), item.value());
  return out;
}

void CausalLM::load_state_dict(const TensorMap& given, const std::string& source) {
  // The hub's GPT-2 file has no "transformer." prefix; HF adds it when loading.
  TensorMap tensors;
  const bool gpt2_bare = spec_.architecture == Architecture::kGpt2 &&
                         given.count("transformer.wte.weight") == 0 &&
                         given.count("wte.weight") != 0;
  for (const auto& [name, t] : given) tensors.emplace(gpt2_bare ? "transformer." + name : name, t);

  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  for (auto& item : named_parameters(true)) {
    const auto it = tensors.find(item.key());
    RUDDER_CHECK(it != tensors.end(), source, ": missing tensor '", item.key(), "'");
    RUDDER_CHECK(it->second.sizes() == item.value().sizes(), source, ": tensor '", item.key(),
                 "' has shape ", it->second.sizes(), ", the model expects ", item.value().sizes());
    item.value().copy_(it->second);
    used.insert(item.key());
  }
  for (const auto& [name, t] : tensors) {
    if (used.count(name)) continue;
    // Buffers that Hugging Face files may carry and a loader ignores.
    const bool ignorable = name.find(".attn.bias") != std::string::npos ||
                           name.find(".attn.masked_bias") != std::string::npos ||
                           name.find("rotary_emb.inv_freq") != std::string::npos ||
                           (spec_.tie_word_embeddings && name == "lm_head.weight");
    RUDDER_CHECK(ignorable, source, ": unexpected tensor '", name, "' (", t.sizes(), ") for a ",
                 spec_.model_type, " model");
  }
}

}  // namespace rudder::models
