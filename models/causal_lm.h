// A decoder-only causal LM in libtorch: the Llama family (Llama, Mistral, Qwen2) and GPT-2,
// with parameter names exactly as in Hugging Face checkpoints, so loading and saving are a
// name-for-name copy.
//
// Attention rule (both families): query i sees key j iff j <= i (in absolute positions, counting
// the cache) and attention_mask[j] == 1. Softmax is computed in float32.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>

#include "models/chunked_logprobs.h"
#include "models/model_spec.h"
#include "models/safetensors.h"

namespace rudder::models {

/// Keys and values of past positions, per layer ([batch, kv_heads, past, head_dim]).
/// Owned by the caller of forward(); empty means no past.
struct KVCache {
  std::vector<at::Tensor> keys;
  std::vector<at::Tensor> values;
  /// Positions already in the cache.
  int64_t length() const;
};

/// The inputs of one forward pass. The constructor keeps the common case short:
/// `model.forward({ids, mask, positions})`, `model.forward({ids, mask, positions, &cache})`.
struct ForwardInput {
  ForwardInput() = default;
  ForwardInput(at::Tensor ids, at::Tensor mask, at::Tensor positions, KVCache* kv = nullptr)
      : input_ids(std::move(ids)),
        attention_mask(std::move(mask)),
        position_ids(std::move(positions)),
        cache(kv) {}

  at::Tensor input_ids;       // [batch, seq]
  at::Tensor attention_mask;  // [batch, past + seq]: 1 real token, 0 padding (cached ones too)
  at::Tensor position_ids;    // [batch, seq]: each token's position in its own example
  KVCache* cache = nullptr;   // when set, this call's keys and values are appended to it
  /// Packed rows, [batch, seq]: a token attends only to earlier tokens of its own segment
  /// (several examples in one row, block-diagonal attention). Undefined: one segment per row.
  /// Not with a cache.
  at::Tensor segment_ids;
  /// [batch, k] positions (in 0..seq-1) whose logits forward() returns as [batch, k, vocab];
  /// undefined: every position. Decoding asks for the last one only.
  at::Tensor logits_positions;
  /// When set, receives the embeddings, the residual stream after each layer, and the final
  /// norm's output (num_layers + 2 tensors of [batch, seq, hidden]).
  std::vector<at::Tensor>* hidden = nullptr;
  /// The caller applies the output head to final_hidden()'s result in the same graph
  /// (forward() and score_tokens() set it). An embedding tied to the head then takes its
  /// gradient as sparse rows, which autograd adds into the head's dense [vocab, hidden]
  /// gradient in place: no dense [vocab, hidden] gradient of the lookup, and no dense sum.
  bool head_follows = false;
  /// Every row's attention_mask is its real tokens, then its padding (models::right_padded),
  /// with no cache and no segments. The model may then mask causally alone: a real query's keys
  /// are all real then, so only the outputs at pad positions change (each attends to the pads
  /// before it too), and on CUDA attention runs libtorch's causal kernel without a mask
  /// (FlashAttention under bf16). Checked when the mask is on the CPU; on a device the caller
  /// vouches for it, having checked the CPU copy. Ignored with a cache or segments.
  bool right_padded = false;
};

/// Whether every row of the [batch, seq] `attention_mask` is ones then zeros (data::collate's
/// PadSide::kRight), as ForwardInput::right_padded requires. Reads the mask: on a device it
/// synchronises, so ask it of the CPU copy a batch is built in.
bool right_padded(const at::Tensor& attention_mask);

/// The input of a collated batch: its ids, attention mask and positions ([batch, seq], built on
/// the CPU) moved to `device`, with right_padded set when the CPU mask allows it. Training and
/// scoring batches take the causal attention path this way, where their padding is at the end.
ForwardInput batch_input(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                         const at::Tensor& position_ids, const at::Device& device);

/// The model. Parameters live in submodules named as in Hugging Face checkpoints.
///
/// Thread-safety: one thread calls forward() at a time (it keeps its RoPE table on the device
/// of the last call's inputs). Position ids are checked against max_positions on the host only
/// when they live on the CPU; on a device, callers keep them in range (generate() checks the
/// prompt and max_new_tokens before decoding).
class CausalLM : public torch::nn::Module {
 public:
  /// Builds a model with freshly initialized (seeded by the caller) parameters.
  explicit CausalLM(const ModelSpec& spec);
  ~CausalLM() override;

  /// Logits [batch, seq, vocab] of every position, or [batch, k, vocab] of
  /// `input.logits_positions`. No host synchronisation on CUDA.
  at::Tensor forward(const ForwardInput& input);

  /// The final norm's output [batch, seq, hidden] (what forward() projects to logits); ignores
  /// logits_positions. Heads read this.
  at::Tensor final_hidden(const ForwardInput& input);

  /// Logits [..., vocab] of final hidden states [..., hidden].
  at::Tensor project_logits(const at::Tensor& hidden);

  /// The output projection as one weight [vocab, hidden] (the embedding when tied) and bias, for
  /// chunked_token_scores; an unmerged LoRA adapter on lm_head is folded in. The weight is
  /// undefined when no single projection is exact (lm_head LoRA with dropout, in training).
  OutputHead output_head();

  /// Activation checkpointing per decoder layer: in training with gradients on (and no cache),
  /// each layer keeps only its input and is run again in the backward. Same gradients.
  void set_activation_checkpointing(bool on);

  /// The sizes the model was built with.
  const ModelSpec& spec() const { return spec_; }

  /// Every parameter by its Hugging Face name (tied weights appear once).
  TensorMap state_dict() const;

  /// Copies `tensors` into the parameters, converting dtypes. Throws InvalidArgument naming
  /// `source` and the tensor for a missing tensor, a shape mismatch or an unexpected tensor.
  void load_state_dict(const TensorMap& tensors, const std::string& source);

  class Impl;

 private:
  bool checkpointing(const KVCache* cache) const;

  ModelSpec spec_;
  std::unique_ptr<Impl> impl_;
  bool checkpoint_layers_ = false;
};

}  // namespace rudder::models
