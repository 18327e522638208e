// LoRA adapters on a CausalLM (Hu et al. 2021), saved in PEFT's layout
// (adapter_config.json + adapter_model.safetensors, keys "base_model.model.<name>").
#pragma once

#include <string>
#include <vector>

#include "models/causal_lm.h"

namespace rudder {
class LoraConfig;
}

namespace rudder::models {

/// Adds an adapter to every projection whose last name component is in
/// `config.target_modules` (empty: q_proj and v_proj for Llama, c_attn for GPT-2) and freezes
/// every other parameter. Returns the adapted module names. Throws InvalidArgument when the rank
/// is 0 or no module matches.
std::vector<std::string> apply_lora(CausalLM& model, const LoraConfig& config);

/// Folds every adapter into its base weight (for fast inference); undone by unmerge_lora.
void merge_lora(CausalLM& model);
/// Subtracts the adapters merged by merge_lora.
void unmerge_lora(CausalLM& model);

/// The adapter parameters by model name ("model.layers.0.self_attn.q_proj.lora_A.weight").
TensorMap lora_state_dict(const CausalLM& model);

/// Base parameters (no adapter tensors) with unmerged adapters folded in, without touching the
/// model: what an exported Hugging Face checkpoint holds.
TensorMap merged_state_dict(const CausalLM& model);

/// Writes adapter_config.json and adapter_model.safetensors into `dir`, atomically.
void save_lora(const CausalLM& model, const LoraConfig& config, const std::string& dir);

/// Reads an adapter saved by save_lora (or PEFT) into `model`, adding the adapters first when
/// the model has none. Throws InvalidArgument naming the file for a missing or misshapen tensor.
void load_lora(CausalLM& model, const std::string& dir);

/// Adapters kept outside a model, so several share one frozen base (DMoERM's capability
/// experts): one per projection that `config` targets, as apply_lora would add them (A
/// Kaiming-uniform, B zero). Parameters are named "<module, '.' as '_'>.lora_A.weight" and
/// "...lora_B.weight". Throws InvalidArgument as apply_lora does.
std::shared_ptr<torch::nn::Module> make_detached_lora(const CausalLM& model,
                                                      const LoraConfig& config);

/// Routes `model`'s projections through `adapter` (from make_detached_lora for a model of the
/// same shape) while it lives. Throws InvalidArgument when the model carries adapters of its
/// own or lacks a projection the adapter names. Not thread-safe: one attachment at a time.
class LoraAttachment {
 public:
  LoraAttachment(CausalLM& model, torch::nn::Module& adapter);
  ~LoraAttachment();
  LoraAttachment(const LoraAttachment&) = delete;
  LoraAttachment& operator=(const LoraAttachment&) = delete;

 private:
  CausalLM& model_;
};

}  // namespace rudder::models
