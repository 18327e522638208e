#include "models/lora.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/detail/projection.h"
#include "proto/rudder.pb.h"

namespace rudder::models {
namespace {

using core::str;
using detail::ProjectionImpl;
constexpr const char* kPeftPrefix = "base_model.model.";

std::string last_component(const std::string& name) {
  const size_t dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

// Every Projection of the model with its name.
std::vector<std::pair<std::string, ProjectionImpl*>> projections(const CausalLM& model) {
  std::vector<std::pair<std::string, ProjectionImpl*>> out;
  for (const auto& item : model.named_modules("", false)) {
    if (auto* p = dynamic_cast<ProjectionImpl*>(item.value().get()))
      out.emplace_back(item.key(), p);
  }
  return out;
}

bool is_adapter_name(const std::string& name) {
  return name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos;
}

// The projections `config` targets (empty: q_proj and v_proj, or c_attn for GPT-2); throws
// InvalidArgument when the rank is 0 or none matches.
std::vector<std::pair<std::string, ProjectionImpl*>> targeted_projections(
    const CausalLM& model, const LoraConfig& config) {
  RUDDER_CHECK(config.rank() > 0, "lora.rank must be > 0 to add adapters");
  std::vector<std::string> targets(config.target_modules().begin(), config.target_modules().end());
  if (targets.empty()) {
    targets = model.spec().architecture == Architecture::kGpt2
                  ? std::vector<std::string>{"c_attn"}
                  : std::vector<std::string>{"q_proj", "v_proj"};
  }
  std::vector<std::pair<std::string, ProjectionImpl*>> out;
  for (auto& [name, proj] : projections(model)) {
    if (std::find(targets.begin(), targets.end(), last_component(name)) != targets.end())
      out.emplace_back(name, proj);
  }
  std::string wanted;
  for (const auto& t : targets) wanted += (wanted.empty() ? "" : ", ") + t;
  RUDDER_CHECK(!out.empty(), "lora.target_modules (", wanted, ") match no module of this ",
               model.spec().model_type, " model");
  return out;
}

}  // namespace

std::vector<std::string> apply_lora(CausalLM& model, const LoraConfig& config) {
  std::vector<std::string> adapted;
  for (auto& [name, proj] : targeted_projections(model, config)) {
    proj->enable_lora(config.rank(), config.alpha(), config.dropout());
    adapted.push_back(name);
  }
  for (auto& item : model.named_parameters(true))
    item.value().set_requires_grad(is_adapter_name(item.key()));
  return adapted;
}

void merge_lora(CausalLM& model) {
  for (auto& [name, proj] : projections(model)) {
    if (proj->lora_A) proj->merge();
  }
}

void unmerge_lora(CausalLM& model) {
  for (auto& [name, proj] : projections(model)) {
    if (proj->lora_A) proj->unmerge();
  }
}

TensorMap lora_state_dict(const CausalLM& model) {
  TensorMap out;
  for (const auto& item : model.named_parameters(true)) {
    if (is_adapter_name(item.key())) out.emplace(item.key(), item.value());
  }
  return out;
}

TensorMap merged_state_dict(const CausalLM& model) {
  torch::NoGradGuard no_grad;
  TensorMap out;
  for (const auto& item : model.named_parameters(true)) {
    if (!is_adapter_name(item.key())) out.emplace(item.key(), item.value());
  }
  for (const auto& [name, proj] : projections(model)) {
    if (!proj->lora_A || proj->merged) continue;
    const at::Tensor delta =
        torch::mm(proj->lora_B->weight, proj->lora_A->weight) * proj->lora_scaling;
    out[name + ".weight"] = proj->weight + (proj->transposed ? delta.t() : delta);
  }
  return out;
}

void save_lora(const CausalLM& model, const LoraConfig& config, const std::string& dir) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  TensorMap tensors;
  std::set<std::string> targets;
  for (const auto& [name, t] : lora_state_dict(model)) {
    tensors.emplace(kPeftPrefix + name, t);
    const std::string module = name.substr(0, name.find(".lora_"));
    targets.insert(last_component(module));
  }
  RUDDER_CHECK(!tensors.empty(), "saving LoRA to ", dir, ": the model has no adapters");
  nlohmann::ordered_json c;
  c["peft_type"] = "LORA";
  c["task_type"] = "CAUSAL_LM";
  c["r"] = config.rank();
  c["lora_alpha"] = config.alpha();
  c["lora_dropout"] = config.dropout();
  c["target_modules"] = std::vector<std::string>(targets.begin(), targets.end());
  c["fan_in_fan_out"] = model.spec().architecture == Architecture::kGpt2;
  c["bias"] = "none";
  const fs::path tmp = fs::path(dir) / "adapter_config.json.tmp";
  {
    std::ofstream out(tmp);
    out << c.dump(2) << "\n";
    RUDDER_CHECK(out.good(), tmp.string(), ": write failed");
  }
  fs::rename(tmp, fs::path(dir) / "adapter_config.json");
  save_safetensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors,
                   {{"format", "pt"}});
}

void load_lora(CausalLM& model, const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path config_path = fs::path(dir) / "adapter_config.json";
  std::ifstream in(config_path);
  RUDDER_CHECK_T(core::NotFound, in.good(), config_path.string(), ": cannot open");
  nlohmann::json c;
  try {
    c = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw core::InvalidArgument(str(config_path.string(), ": malformed JSON: ", e.what()));
  }
  if (lora_state_dict(model).empty()) {
    LoraConfig config;
    try {
      config.set_rank(c.at("r").get<uint32_t>());
      config.set_alpha(c.at("lora_alpha").get<double>());
      config.set_dropout(c.value("lora_dropout", 0.0));
      for (const auto& t : c.at("target_modules")) config.add_target_modules(t.get<std::string>());
    } catch (const nlohmann::json::exception& e) {
      throw core::InvalidArgument(str(config_path.string(), ": ", e.what()));
    }
    apply_lora(model, config);
  }
  const std::string file = (fs::path(dir) / "adapter_model.safetensors").string();
  const TensorMap tensors = load_safetensors(file).tensors;
  torch::NoGradGuard no_grad;
  size_t loaded = 0;
  for (auto& [name, param] : lora_state_dict(model)) {
    const auto it = tensors.find(kPeftPrefix + name);
    RUDDER_CHECK(it != tensors.end(), file, ": missing tensor '", kPeftPrefix + name, "'");
    RUDDER_CHECK(it->second.sizes() == param.sizes(), file, ": tensor '", it->first, "' has shape ",
                 it->second.sizes(), ", the adapter expects ", param.sizes());
    at::Tensor target = param;
    target.copy_(it->second);
    ++loaded;
  }
  RUDDER_CHECK(loaded == tensors.size(), file, ": holds ", tensors.size(),
               " tensors but the adapters use ", loaded);
}

namespace {

// The adapter of one projection, held outside the model.
struct DetachedPairImpl : torch::nn::Module {
  DetachedPairImpl(int64_t in, int64_t out, int64_t rank) {
    lora_A = register_module("lora_A",
                             torch::nn::Linear(torch::nn::LinearOptions(in, rank).bias(false)));
    lora_B = register_module("lora_B",
                             torch::nn::Linear(torch::nn::LinearOptions(rank, out).bias(false)));
  }
  torch::nn::Linear lora_A{nullptr}, lora_B{nullptr};
};
TORCH_MODULE(DetachedPair);

struct DetachedLoraImpl : torch::nn::Module {
  std::vector<std::pair<std::string, DetachedPair>> pairs;  // by projection name
  double scaling = 0.0, dropout = 0.0;
};

std::string flat_name(std::string name) {
  std::replace(name.begin(), name.end(), '.', '_');
  return name;
}

}  // namespace

std::shared_ptr<torch::nn::Module> make_detached_lora(const CausalLM& model,
                                                      const LoraConfig& config) {
  auto out = std::make_shared<DetachedLoraImpl>();
  out->scaling = config.alpha() / static_cast<double>(config.rank());
  out->dropout = config.dropout();
  torch::NoGradGuard no_grad;
  for (auto& [name, proj] : targeted_projections(model, config)) {
    DetachedPair pair(proj->in_features, proj->out_features, config.rank());
    const double bound = 1.0 / std::sqrt(static_cast<double>(proj->in_features));
    pair->lora_A->weight.uniform_(-bound, bound);  // as ProjectionImpl::enable_lora
    pair->lora_B->weight.zero_();
    pair->to(proj->weight.device(), proj->weight.scalar_type());
    out->pairs.emplace_back(name, out->register_module(flat_name(name), pair));
  }
  return out;
}

LoraAttachment::LoraAttachment(CausalLM& model, torch::nn::Module& adapter) : model_(model) {
  auto* lora = dynamic_cast<DetachedLoraImpl*>(&adapter);
  RUDDER_CHECK(lora != nullptr, "the module is not an adapter from make_detached_lora");
  std::map<std::string, ProjectionImpl*> by_name;
  for (auto& [name, proj] : projections(model)) {
    RUDDER_CHECK(!proj->lora_A, "cannot attach an adapter: ", name, " carries one already");
    by_name[name] = proj;
  }
  for (auto& [name, pair] : lora->pairs) {
    const auto it = by_name.find(name);
    RUDDER_CHECK(it != by_name.end(), "cannot attach an adapter: the model has no ", name);
    it->second->lora_A = pair->lora_A;
    it->second->lora_B = pair->lora_B;
    it->second->lora_scaling = lora->scaling;
    it->second->lora_dropout = lora->dropout;
  }
}

LoraAttachment::~LoraAttachment() {
  for (auto& [name, proj] : projections(model_)) {
    proj->lora_A = torch::nn::Linear{nullptr};
    proj->lora_B = torch::nn::Linear{nullptr};
    proj->lora_scaling = 0.0;
  }
}

}  // namespace rudder::models
