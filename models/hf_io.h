// Hugging Face model directories: config.json with model.safetensors, or the shards listed in
// model.safetensors.index.json.
#pragma once

#include <memory>
#include <string>

namespace rudder::models {

class CausalLM;

/// Loads a Hugging Face model directory. Parameters are float32 whatever the file's dtype.
/// Throws NotFound when the directory holds no weights, InvalidArgument for malformed files.
std::shared_ptr<CausalLM> load_hf_model(const std::string& dir);

/// Writes config.json and model.safetensors into `dir` (created), each atomically. LoRA
/// adapters are folded into the saved weights (see merged_state_dict in models/lora.h).
void save_hf_model(const CausalLM& model, const std::string& dir);

}  // namespace rudder::models
