// The shape of a decoder-only causal LM, read from a Hugging Face config.json or built for
// the embedded default.
#pragma once

#include <cstdint>
#include <string>

namespace rudder::models {

/// The two families Rudder implements.
enum class Architecture {
  kLlama,  // Llama, Mistral, Qwen2: RMSNorm, RoPE, grouped-query attention, SwiGLU
  kGpt2,   // GPT-2: learned positions, LayerNorm, GELU (tanh), Conv1D weights stored [in, out]
};

/// Sizes and options of a causal LM.
struct ModelSpec {
  Architecture architecture = Architecture::kLlama;
  std::string model_type = "llama";  // config.json's model_type, kept for saving
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;       // == num_heads without grouped-query attention
  int64_t head_dim = 0;           // hidden_size / num_heads unless config.json says otherwise
  int64_t intermediate_size = 0;  // MLP inner width
  int64_t max_positions = 0;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // biases on q/k/v projections (Qwen2; Llama's attention_bias)
  bool o_bias = false;    // bias on the output projection (Llama's attention_bias)
};

/// Reads `config.json` of a Hugging Face model directory. Throws InvalidArgument naming the file
/// and key for missing keys, bad values and unsupported architectures.
ModelSpec read_hf_config(const std::string& config_json_path);

/// Checks that the sizes are positive and consistent; throws InvalidArgument otherwise.
void validate(const ModelSpec& spec);

}  // namespace rudder::models
