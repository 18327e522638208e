#include "models/model_spec.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace rudder::models {
namespace {

using core::str;
using nlohmann::json;

template <typename T>
T get(const json& j, const std::string& key, const std::string& path) {
  RUDDER_CHECK(j.contains(key) && !j.at(key).is_null(), path, ": missing key '", key, "'");
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    throw core::InvalidArgument(
        str(path, ": key '", key, "' has the wrong type: ", j.at(key).dump()));
  }
}

template <typename T>
T get_or(const json& j, const std::string& key, T fallback, const std::string& path) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  return get<T>(j, key, path);
}

}  // namespace

void validate(const ModelSpec& s) {
  RUDDER_CHECK(
      s.vocab_size > 0 && s.hidden_size > 0 && s.num_layers > 0 && s.num_heads > 0 &&
          s.num_kv_heads > 0 && s.head_dim > 0 && s.intermediate_size > 0 && s.max_positions > 0,
      "model sizes must be positive: vocab ", s.vocab_size, ", hidden ", s.hidden_size, ", layers ",
      s.num_layers, ", heads ", s.num_heads, ", kv heads ", s.num_kv_heads, ", head_dim ",
      s.head_dim, ", intermediate ", s.intermediate_size, ", positions ", s.max_positions);
  RUDDER_CHECK(s.num_heads % s.num_kv_heads == 0, "num_heads (", s.num_heads,
               ") must be a multiple of num_kv_heads (", s.num_kv_heads, ")");
  if (s.architecture == Architecture::kGpt2) {
    RUDDER_CHECK(s.head_dim * s.num_heads == s.hidden_size, "GPT-2 needs hidden_size (",
                 s.hidden_size, ") = num_heads (", s.num_heads, ") x head_dim (", s.head_dim, ")");
  } else {
    RUDDER_CHECK(s.head_dim % 2 == 0, "RoPE needs an even head_dim, got ", s.head_dim);
  }
  RUDDER_CHECK(s.norm_eps > 0, "norm epsilon must be > 0, got ", s.norm_eps);
}

namespace {

// config.json of the Llama family (llama, mistral, qwen2).
ModelSpec llama_family_spec(const json& j, const std::string& type, const std::string& path) {
  ModelSpec s;
  s.model_type = type;
  s.architecture = Architecture::kLlama;
  s.vocab_size = get<int64_t>(j, "vocab_size", path);
  s.hidden_size = get<int64_t>(j, "hidden_size", path);
  s.num_layers = get<int64_t>(j, "num_hidden_layers", path);
  s.num_heads = get<int64_t>(j, "num_attention_heads", path);
  s.num_kv_heads = get_or<int64_t>(j, "num_key_value_heads", s.num_heads, path);
  s.head_dim =
      get_or<int64_t>(j, "head_dim", s.num_heads > 0 ? s.hidden_size / s.num_heads : 0, path);
  s.intermediate_size = get<int64_t>(j, "intermediate_size", path);
  s.max_positions = get_or<int64_t>(j, "max_position_embeddings", 2048, path);
  s.rope_theta = get_or<double>(j, "rope_theta", 10000.0, path);
  s.norm_eps = get_or<double>(j, "rms_norm_eps", 1e-6, path);
  s.tie_word_embeddings = get_or<bool>(j, "tie_word_embeddings", false, path);
  const std::string act = get_or<std::string>(j, "hidden_act", "silu", path);
  RUDDER_CHECK(act == "silu", path, ": hidden_act '", act, "' is not supported (only silu)");
  RUDDER_CHECK(!j.contains("rope_scaling") || j.at("rope_scaling").is_null(), path,
               ": rope_scaling is not supported yet");
  if (type == "qwen2") {
    s.qkv_bias = true;
  } else {
    s.qkv_bias = s.o_bias = get_or<bool>(j, "attention_bias", false, path);
  }
  RUDDER_CHECK(!get_or<bool>(j, "mlp_bias", false, path), path, ": mlp_bias is not supported");
  // Qwen2's sliding window changes which keys a layer reads. Mistral's `sliding_window` is
  // ignored: attention is full, as the window's own is for sequences within it (4096 tokens
  // in Mistral 7B); longer ones differ.
  RUDDER_CHECK(type != "qwen2" || !get_or<bool>(j, "use_sliding_window", false, path), path,
               ": use_sliding_window is not supported");
  return s;
}

// config.json of GPT-2.
ModelSpec gpt2_spec(const json& j, const std::string& path) {
  ModelSpec s;
  s.model_type = "gpt2";
  s.architecture = Architecture::kGpt2;
  s.vocab_size = get<int64_t>(j, "vocab_size", path);
  s.hidden_size = get<int64_t>(j, "n_embd", path);
  s.num_layers = get<int64_t>(j, "n_layer", path);
  s.num_heads = get<int64_t>(j, "n_head", path);
  s.num_kv_heads = s.num_heads;
  s.head_dim = s.num_heads > 0 ? s.hidden_size / s.num_heads : 0;
  s.intermediate_size = get_or<int64_t>(j, "n_inner", 4 * s.hidden_size, path);
  s.max_positions = get<int64_t>(j, "n_positions", path);
  s.norm_eps = get_or<double>(j, "layer_norm_epsilon", 1e-5, path);
  s.tie_word_embeddings = true;
  RUDDER_CHECK(get_or<bool>(j, "tie_word_embeddings", true, path), path,
               ": tie_word_embeddings false is not supported for gpt2 (its head is wte)");
  RUDDER_CHECK(get_or<bool>(j, "scale_attn_weights", true, path), path,
               ": scale_attn_weights false is not supported (attention scores are scaled by "
               "1/sqrt(head_dim))");
  const std::string act = get_or<std::string>(j, "activation_function", "gelu_new", path);
  RUDDER_CHECK(act == "gelu_new" || act == "gelu_pytorch_tanh", path, ": activation_function '",
               act, "' is not supported (only gelu_new)");
  RUDDER_CHECK(!get_or<bool>(j, "scale_attn_by_inverse_layer_idx", false, path), path,
               ": scale_attn_by_inverse_layer_idx is not supported");
  return s;
}

}  // namespace

ModelSpec read_hf_config(const std::string& path) {
  std::ifstream in(path);
  RUDDER_CHECK_T(core::NotFound, in.good(), path, ": cannot open");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw core::InvalidArgument(str(path, ": malformed JSON: ", e.what()));
  }
  const std::string type = get<std::string>(j, "model_type", path);
  ModelSpec s;
  if (type == "llama" || type == "mistral" || type == "qwen2") {
    s = llama_family_spec(j, type, path);
  } else if (type == "gpt2") {
    s = gpt2_spec(j, path);
  } else {
    throw core::InvalidArgument(str(path, ": unsupported model_type '", type,
                                    "' (supported: llama, mistral, qwen2, gpt2)"));
  }
  try {
    validate(s);
  } catch (const core::InvalidArgument& e) {
    throw core::InvalidArgument(str(path, ": ", e.what()));
  }
  return s;
}

}  // namespace rudder::models
