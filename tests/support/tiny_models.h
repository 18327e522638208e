// The tiny model shapes tests build and decode with.
#pragma once

#include <cstdint>

#include "models/model_spec.h"

namespace rudder::testing {

/// A Llama with the byte tokenizer's vocabulary (260), tied embeddings, head_dim 8.
inline models::ModelSpec tiny_llama(int64_t hidden = 32, int64_t layers = 1, int64_t kv_heads = 2,
                                    int64_t positions = 128) {
  models::ModelSpec s;
  s.vocab_size = 260;
  s.hidden_size = hidden;
  s.num_layers = layers;
  s.num_heads = hidden / 8;
  s.num_kv_heads = kv_heads;
  s.head_dim = 8;
  s.intermediate_size = hidden * 3 / 2;
  s.max_positions = positions;
  s.tie_word_embeddings = true;
  return s;
}

/// A one-layer Llama (hidden 32, head_dim 16, 64 positions) over the byte tokenizer's vocabulary:
/// the reward-model tests' backbone.
inline models::ModelSpec tiny_rm_spec() {
  models::ModelSpec s = tiny_llama(32, 1, 1, 64);
  s.num_heads = 2;
  s.head_dim = 16;
  s.intermediate_size = 48;
  return s;
}

/// A two-layer model of either family over a 40-token vocabulary (hidden 32, 4 heads of 8; the
/// Llama with 2 key/value heads), untied: the packing and padding tests' model.
inline models::ModelSpec tiny_model(models::Architecture architecture) {
  models::ModelSpec s;
  s.architecture = architecture;
  s.model_type = architecture == models::Architecture::kLlama ? "llama" : "gpt2";
  s.vocab_size = 40;
  s.hidden_size = 32;
  s.num_layers = 2;
  s.num_heads = 4;
  s.num_kv_heads = architecture == models::Architecture::kLlama ? 2 : 4;
  s.head_dim = 8;
  s.intermediate_size = 64;
  s.max_positions = 64;
  return s;
}

}  // namespace rudder::testing
