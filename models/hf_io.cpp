#include "models/hf_io.h"

#include <filesystem>
#include <fstream>
#include <set>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/causal_lm.h"
#include "models/lora.h"
#include "models/safetensors.h"

namespace rudder::models {

using core::str;

std::shared_ptr<CausalLM> load_hf_model(const std::string& dir) {
  namespace fs = std::filesystem;
  const ModelSpec spec = read_hf_config((fs::path(dir) / "config.json").string());
  auto model = std::make_shared<CausalLM>(spec);
  const fs::path single = fs::path(dir) / "model.safetensors";
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  TensorMap tensors;
  std::string source = single.string();
  if (fs::exists(single)) {
    tensors = load_safetensors(single.string()).tensors;
  } else {
    RUDDER_CHECK_T(core::NotFound, fs::exists(index), dir,
                   ": neither model.safetensors nor model.safetensors.index.json");
    std::ifstream in(index);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw core::InvalidArgument(str(index.string(), ": malformed JSON: ", e.what()));
    }
    RUDDER_CHECK(j.contains("weight_map") && j.at("weight_map").is_object(), index.string(),
                 ": no weight_map");
    std::set<std::string> shards;
    for (const auto& [name, file] : j.at("weight_map").items())
      shards.insert(file.get<std::string>());
    for (const auto& shard : shards) {
      RUDDER_CHECK(shard.find('/') == std::string::npos, index.string(), ": shard '", shard,
                   "' is not a file name");
      for (auto& [name, t] : load_safetensors((fs::path(dir) / shard).string()).tensors) {
        RUDDER_CHECK(j.at("weight_map").value(name, "") == shard, index.string(), ": tensor '",
                     name, "' in ", shard, " is not listed there");
        tensors.emplace(name, std::move(t));
      }
    }
    source = index.string();
  }
  model->load_state_dict(tensors, source);
  return model;
}

void save_hf_model(const CausalLM& model, const std::string& dir) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  const ModelSpec& s = model.spec();
  nlohmann::ordered_json c;
  c["model_type"] = s.model_type;
  c["vocab_size"] = s.vocab_size;
  c["tie_word_embeddings"] = s.tie_word_embeddings;
  if (s.architecture == Architecture::kLlama) {
    c["architectures"] = {s.model_type == "qwen2"     ? "Qwen2ForCausalLM"
                          : s.model_type == "mistral" ? "MistralForCausalLM"
                                                      : "LlamaForCausalLM"};
    c["hidden_size"] = s.hidden_size;
    c["num_hidden_layers"] = s.num_layers;
    c["num_attention_heads"] = s.num_heads;
    c["num_key_value_heads"] = s.num_kv_heads;
    c["head_dim"] = s.head_dim;
    c["intermediate_size"] = s.intermediate_size;
    c["max_position_embeddings"] = s.max_positions;
    c["rope_theta"] = s.rope_theta;
    c["rms_norm_eps"] = s.norm_eps;
    c["hidden_act"] = "silu";
    if (s.model_type != "qwen2") c["attention_bias"] = s.qkv_bias;
  } else {
    c["architectures"] = {"GPT2LMHeadModel"};
    c["n_embd"] = s.hidden_size;
    c["n_layer"] = s.num_layers;
    c["n_head"] = s.num_heads;
    c["n_inner"] = s.intermediate_size;
    c["n_positions"] = s.max_positions;
    c["layer_norm_epsilon"] = s.norm_eps;
    c["activation_function"] = "gelu_new";
  }
  const fs::path config = fs::path(dir) / "config.json";
  const fs::path tmp = fs::path(dir) / "config.json.tmp";
  {
    std::ofstream out(tmp);
    out << c.dump(2) << "\n";
    RUDDER_CHECK(out.good(), tmp.string(), ": write failed");
  }
  fs::rename(tmp, config);
  save_safetensors((fs::path(dir) / "model.safetensors").string(), merged_state_dict(model),
                   {{"format", "pt"}});
}

}  // namespace rudder::models
