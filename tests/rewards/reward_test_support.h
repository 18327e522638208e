// Shared by the reward-model tests of this folder: a tiny untrained model and the tokenizer and
// data settings it is scored with.
#pragma once

#include "models/model_spec.h"
#include "proto/rudder.pb.h"

namespace rudder::testing {

/// A one-layer Llama (hidden 32) over the byte tokenizer's vocabulary.
inline models::ModelSpec tiny_rm_spec() {
  models::ModelSpec s;
  s.vocab_size = 260;
  s.hidden_size = 32;
  s.num_layers = 1;
  s.num_heads = 2;
  s.num_kv_heads = 1;
  s.head_dim = 16;
  s.intermediate_size = 48;
  s.max_positions = 64;
  s.tie_word_embeddings = true;
  return s;
}

/// max_length 64, max_prompt_length 32.
inline DataConfig rm_data_config() {
  DataConfig dc;
  dc.set_max_length(64);
  dc.set_max_prompt_length(32);
  return dc;
}

}  // namespace rudder::testing
