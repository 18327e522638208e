// The model a config asks for: a Hugging Face directory, or the embedded default.
#pragma once

#include <memory>

#include "models/causal_lm.h"

namespace rudder {
class ModelConfig;
}

namespace rudder::models {

/// The embedded default's spec from the config; `vocab_size` comes from the tokenizer when it
/// exceeds the config's.
ModelSpec embedded_spec(const ModelConfig& config, int64_t vocab_size);

/// Loads `config.path` when set, else builds the embedded default with weights drawn from
/// libtorch's generator (seed it first). Applies LoRA and HFT as configured.
std::shared_ptr<CausalLM> make_model(const ModelConfig& config, int64_t vocab_size);

}  // namespace rudder::models
