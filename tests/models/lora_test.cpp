#include "models/lora.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "models/hf_io.h"
#include "models/hft.h"
#include "proto/rudder.pb.h"
#include "tests/support/tensor_testing.h"
#include "tests/support/test_support.h"

namespace rudder::models {
namespace {

class LoraTest : public testing::SeededTest {};

ModelSpec spec(Architecture arch) {
  ModelSpec s;
  s.architecture = arch;
  s.model_type = arch == Architecture::kGpt2 ? "gpt2" : "llama";
  s.vocab_size = 40;
  s.hidden_size = 32;
  s.num_layers = 2;
  s.num_heads = 4;
  s.num_kv_heads = arch == Architecture::kGpt2 ? 4 : 2;
  s.head_dim = 8;
  s.intermediate_size = 48;
  s.max_positions = 32;
  s.tie_word_embeddings = arch == Architecture::kGpt2;
  return s;
}

at::Tensor logits_of(CausalLM& m) {
  torch::NoGradGuard no_grad;
  const at::Tensor ids = torch::arange(12).remainder(40).view({2, 6});
  const at::Tensor mask = torch::ones({2, 6}, torch::kLong);
  const at::Tensor pos = torch::arange(6).repeat({2, 1});
  return m.forward({ids, mask, pos});
}

LoraConfig lora_config(int rank) {
  LoraConfig c;
  c.set_rank(rank);
  c.set_alpha(16);
  return c;
}

// Gives the adapters non-zero weights, as training would.
void perturb_adapters(CausalLM& m) {
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : lora_state_dict(m)) {
    at::Tensor p = t;
    p.add_(torch::randn(p.sizes()) * 0.05);
  }
}

TEST_F(LoraTest, AdaptersStartAsIdentityAndFreezeTheBase) {
  for (const auto arch : {Architecture::kLlama, Architecture::kGpt2}) {
    CausalLM m(spec(arch));
    const at::Tensor before = logits_of(m);
    const auto adapted = apply_lora(m, lora_config(4));
    EXPECT_EQ(adapted.size(),
              arch == Architecture::kGpt2 ? 2u : 4u);  // per layer: c_attn | q_proj, v_proj
    EXPECT_TRUE(torch::equal(before, logits_of(m)));
    for (const auto& item : m.named_parameters(true)) {
      const bool adapter = item.key().find(".lora_") != std::string::npos;
      EXPECT_EQ(item.value().requires_grad(), adapter) << item.key();
    }
  }
}

TEST_F(LoraTest, MergeMatchesAndUnmergeRestores) {
  CausalLM m(spec(Architecture::kLlama));
  apply_lora(m, lora_config(4));
  perturb_adapters(m);
  const at::Tensor adapted = logits_of(m);
  const at::Tensor q_before = m.state_dict().at("model.layers.0.self_attn.q_proj.weight").clone();
  merge_lora(m);
  testing::expect_tensor_near(logits_of(m), adapted, 1e-5, "merged logits");
  EXPECT_FALSE(torch::equal(m.state_dict().at("model.layers.0.self_attn.q_proj.weight"), q_before));
  unmerge_lora(m);
  testing::expect_tensor_near(m.state_dict().at("model.layers.0.self_attn.q_proj.weight"), q_before,
                              1e-6, "unmerged");
  testing::expect_tensor_near(logits_of(m), adapted, 1e-5, "unmerged logits");
}

TEST_F(LoraTest, SaveLoadRoundTripIsBitwiseAndExportFoldsAdapters) {
  for (const auto arch : {Architecture::kLlama, Architecture::kGpt2}) {
    CausalLM m(spec(arch));
    testing::TempDir base_dir, adapter_dir, export_dir;
    save_hf_model(m, base_dir.path());
    apply_lora(m, lora_config(4));
    perturb_adapters(m);
    save_lora(m, lora_config(4), adapter_dir.path());

    auto fresh = load_hf_model(base_dir.path());
    load_lora(*fresh, adapter_dir.path());
    const TensorMap a = lora_state_dict(m), b = lora_state_dict(*fresh);
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
    EXPECT_TRUE(torch::equal(logits_of(m), logits_of(*fresh)));

    save_hf_model(m, export_dir.path());  // adapters folded in
    auto exported = load_hf_model(export_dir.path());
    testing::expect_tensor_near(logits_of(*exported), logits_of(m), 1e-5, "exported logits");
  }
}

TEST_F(LoraTest, BadAdaptersAreRefused) {
  CausalLM m(spec(Architecture::kLlama));
  EXPECT_THROW(apply_lora(m, lora_config(0)), core::InvalidArgument);
  LoraConfig c = lora_config(4);
  c.add_target_modules("c_attn");
  try {
    apply_lora(m, c);
    FAIL();
  } catch (const core::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("match no module"), std::string::npos);
  }
  CausalLM other(spec(Architecture::kLlama));
  apply_lora(other, lora_config(8));
  testing::TempDir dir;
  save_lora(other, lora_config(8), dir.path());
  CausalLM target(spec(Architecture::kLlama));
  apply_lora(target, lora_config(4));
  EXPECT_THROW(load_lora(target, dir.path()), core::InvalidArgument);
}

TEST_F(LoraTest, HftFreezesASeededHalfOfEachBlock) {
  CausalLM a(spec(Architecture::kLlama));
  const auto frozen = apply_hft(a, 7);
  size_t block_params = 0;
  for (const auto& item : a.named_parameters(true))
    block_params += item.key().rfind("model.layers.", 0) == 0;
  EXPECT_EQ(frozen.size(),
            2 * ((block_params / 2) / 2));  // two blocks of 9 parameters: 4 frozen each
  for (const auto& item : a.named_parameters(true)) {
    const bool is_frozen = std::find(frozen.begin(), frozen.end(), item.key()) != frozen.end();
    EXPECT_EQ(item.value().requires_grad(), !is_frozen) << item.key();
  }
  CausalLM b(spec(Architecture::kLlama)), c(spec(Architecture::kLlama));
  EXPECT_EQ(apply_hft(b, 7), frozen);
  EXPECT_NE(apply_hft(c, 8), frozen);
}

}  // namespace
}  // namespace rudder::models
