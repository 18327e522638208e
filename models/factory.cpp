#include "models/factory.h"

#include "core/error.h"
#include "models/hf_io.h"
#include "models/hft.h"
#include "models/lora.h"
#include "proto/rudder.pb.h"

namespace rudder::models {

ModelSpec embedded_spec(const ModelConfig& c, int64_t vocab_size) {
  ModelSpec s;
  s.architecture = c.architecture() == "gpt2" ? Architecture::kGpt2 : Architecture::kLlama;
  s.model_type = c.architecture();
  s.vocab_size = std::max<int64_t>(c.vocab_size(), vocab_size);
  s.hidden_size = c.hidden_size();
  s.num_layers = c.num_layers();
  s.num_heads = c.num_heads();
  s.num_kv_heads = s.architecture == Architecture::kGpt2 ? c.num_heads() : c.num_kv_heads();
  RUDDER_CHECK(c.num_heads() > 0 && c.hidden_size() % c.num_heads() == 0, "model.hidden_size (",
               c.hidden_size(), ") must be a multiple of model.num_heads (", c.num_heads(), ")");
  s.head_dim = c.hidden_size() / c.num_heads();
  s.intermediate_size = c.intermediate_size();
  s.max_positions = c.max_position_embeddings();
  s.rope_theta = c.rope_theta();
  s.norm_eps = 1e-5;
  s.tie_word_embeddings = s.architecture == Architecture::kGpt2 || c.tie_word_embeddings();
  validate(s);
  return s;
}

std::shared_ptr<CausalLM> make_model(const ModelConfig& config, int64_t vocab_size) {
  std::shared_ptr<CausalLM> model;
  if (!config.path().empty()) {
    model = load_hf_model(config.path());
    RUDDER_CHECK(model->spec().vocab_size >= vocab_size, config.path(),
                 ": the model's vocabulary (", model->spec().vocab_size,
                 ") is smaller than the tokenizer's (", vocab_size, ")");
  } else {
    model = std::make_shared<CausalLM>(embedded_spec(config, vocab_size));
  }
  if (config.lora().rank() > 0) apply_lora(*model, config.lora());
  if (config.hft().enabled()) apply_hft(*model, config.hft().seed());
  return model;
}

}  // namespace rudder::models
