// A decoder-only causal LM in libtorch: the Llama family (Llama, Mistral, Qwen2) and GPT-2,
// with parameter names exactly as in Hugging Face checkpoints, so loading and saving are a
// name-for-name copy.
//
// Attention rule (both families): query i sees key j iff j <= i (in absolute positions, counting
// the cache) and attention_mask[j] == 1. Softmax is computed in float32.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>

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

/// Optional outputs of forward().
struct ForwardExtras {
  /// When set, receives the embeddings, the residual stream after each layer, and the final
  /// norm's output (num_layers + 2 tensors of [batch, seq, hidden]).
  std::vector<at::Tensor>* hidden = nullptr;
};

/// The model. Parameters live in submodules named as in Hugging Face checkpoints.
class CausalLM : public torch::nn::Module {
 public:
  /// Builds a model with freshly initialized (seeded by the caller) parameters.
  explicit CausalLM(const ModelSpec& spec);
  ~CausalLM() override;

  /// Logits [batch, seq, vocab] for `input_ids` [batch, seq].
  /// `attention_mask` [batch, past + seq] covers the cached positions too (1 real, 0 padding);
  /// `position_ids` [batch, seq]. With `cache`, keys and values of this call are appended to it.
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                     const at::Tensor& position_ids, KVCache* cache = nullptr,
                     const ForwardExtras& extras = {});

  /// The final norm's output [batch, seq, hidden] (what forward() projects to logits); the
  /// arguments are those of forward(). Heads read this.
  at::Tensor final_hidden(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                          const at::Tensor& position_ids, KVCache* cache = nullptr,
                          const ForwardExtras& extras = {});

  /// Logits [..., vocab] of final hidden states [..., hidden].
  at::Tensor project_logits(const at::Tensor& hidden);

  /// The sizes the model was built with.
  const ModelSpec& spec() const { return spec_; }

  /// Every parameter by its Hugging Face name (tied weights appear once).
  TensorMap state_dict() const;

  /// Copies `tensors` into the parameters, converting dtypes. Throws InvalidArgument naming
  /// `source` and the tensor for a missing tensor, a shape mismatch or an unexpected tensor.
  void load_state_dict(const TensorMap& tensors, const std::string& source);

  class Impl;

 private:
  ModelSpec spec_;
  std::unique_ptr<Impl> impl_;
};

/// Loads a Hugging Face model directory: config.json plus model.safetensors, or the shards of
/// model.safetensors.index.json. Parameters are float32 whatever the file's dtype.
std::shared_ptr<CausalLM> load_hf_model(const std::string& dir);

/// Writes config.json and model.safetensors into `dir` (created), each atomically. LoRA
/// adapters are folded into the saved weights (see merged_state_dict in models/lora.h).
void save_hf_model(const CausalLM& model, const std::string& dir);

}  // namespace rudder::models
