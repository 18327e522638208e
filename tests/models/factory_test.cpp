#include "models/factory.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/config.h"
#include "core/error.h"
#include "tests/support/tensor_testing.h"
#include "tests/support/test_support.h"

namespace rudder::models {
namespace {

class FactoryTest : public testing::SeededTest {};

ModelConfig default_model_config() {
  ExperimentConfig c;
  core::parse_config_text("{}", "defaults", {}, &c);
  return c.model();
}

TEST_F(FactoryTest, EmbeddedDefaultBuildsFromConfigDefaults) {
  const ModelConfig config = default_model_config();
  auto model = make_model(config, 260);
  EXPECT_EQ(model->spec().vocab_size, 260);
  EXPECT_EQ(model->spec().hidden_size, config.hidden_size());
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  EXPECT_GT(params, 100000);
  const at::Tensor ids = torch::randint(0, 260, {2, 9});
  const at::Tensor logits =
      model->forward({ids, torch::ones({2, 9}, torch::kLong), torch::arange(9).repeat({2, 1})});
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 9, 260}));
  EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
}

TEST_F(FactoryTest, Bfloat16ForwardTracksFloat32) {
  auto model = make_model(default_model_config(), 260);
  const at::Tensor ids = torch::randint(0, 260, {2, 16});
  const at::Tensor mask = torch::ones({2, 16}, torch::kLong);
  const at::Tensor pos = torch::arange(16).repeat({2, 1});
  torch::NoGradGuard no_grad;
  const at::Tensor f32 = model->forward({ids, mask, pos});
  model->to(torch::kBFloat16);
  const at::Tensor bf16 = model->forward({ids, mask, pos});
  EXPECT_EQ(bf16.scalar_type(), torch::kBFloat16);
  testing::expect_tensor_near(bf16.to(torch::kFloat), f32, 0.1, "bf16 logits");
}

TEST_F(FactoryTest, CudaForwardMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto model = make_model(default_model_config(), 260);
  const at::Tensor ids = torch::randint(0, 260, {2, 16});
  const at::Tensor mask = torch::ones({2, 16}, torch::kLong);
  const at::Tensor pos = torch::arange(16).repeat({2, 1});
  torch::NoGradGuard no_grad;
  const at::Tensor cpu = model->forward({ids, mask, pos});
  model->to(torch::kCUDA);
  const at::Tensor cuda = model->forward({ids.cuda(), mask.cuda(), pos.cuda()}).cpu();
  testing::expect_tensor_near(cuda, cpu, 1e-4, "cuda logits");
}

TEST_F(FactoryTest, BadSizesAreRefused) {
  ModelConfig config = default_model_config();
  config.set_num_heads(5);
  EXPECT_THROW(make_model(config, 260), core::InvalidArgument);
  config = default_model_config();
  config.set_num_kv_heads(3);
  EXPECT_THROW(make_model(config, 260), core::InvalidArgument);
  config = default_model_config();
  config.set_path("/nonexistent/model");
  EXPECT_THROW(make_model(config, 260), core::Error);
}

}  // namespace
}  // namespace rudder::models
