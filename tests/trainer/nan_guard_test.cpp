// The trainer's NaN guard with a method whose gradients turn non-finite on chosen steps.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/config.h"
#include "core/error.h"
#include "tests/support/test_support.h"
#include "trainer/trainer.h"

namespace rudder::trainer {
namespace {

// y = w . x; the loss is multiplied by NaN on the steps listed in `poisoned` (1-based calls).
class PoisonedMethod : public algorithms::DatasetAlgorithm {
 public:
  explicit PoisonedMethod(std::set<int> poisoned) : poisoned_(std::move(poisoned)) {
    module_.register_parameter("w", torch::ones({4}));
  }
  std::string name() const override { return "poisoned"; }
  uint64_t num_train() const override { return 16; }
  double example_units(const std::vector<uint64_t>& examples) const override {
    return static_cast<double>(examples.size());
  }
  std::map<std::string, double> evaluate() override { return {}; }
  torch::nn::Module& trainable() override { return module_; }
  double flops_per_token() const override { return 1.0; }
  at::Tensor weight() { return module_.named_parameters()["w"]; }

 protected:
  algorithms::StepStats train_examples(const std::vector<uint64_t>& examples,
                                       double total_units) override {
    ++calls_;
    at::Tensor loss = module_.named_parameters()["w"].pow(2).sum() *
                      static_cast<double>(examples.size()) / total_units;
    if (poisoned_.count(calls_)) loss = loss * std::nan("");
    loss.backward();
    algorithms::StepStats s;
    s.loss_sum = loss.item<double>() * total_units;
    s.units = static_cast<double>(examples.size());
    s.tokens = 1;
    return s;
  }

 private:
  torch::nn::Module module_;
  std::set<int> poisoned_;
  int calls_ = 0;
};

ExperimentConfig config_for(const std::string& out) {
  ExperimentConfig c;
  core::parse_config_text("output_dir: " + out +
                              "\ntraining: {max_steps: 6, micro_batch_size: 4, global_batch_size: "
                              "4, max_nonfinite_steps: 3}\n"
                              "optimizer: {lr: 0.1}\n",
                          "nan-guard test", {}, &c);
  return c;
}

TEST(NanGuard, SkipsNonFiniteStepsWithoutTouchingWeights) {
  testing::TempDir dir;
  PoisonedMethod method({2, 3});
  algorithms::DatasetSource source(method.num_train(), 1, false);
  auto group = core::ProcessGroup::single();
  Trainer trainer(config_for(dir.path()), method, source, *group, {});
  const TrainResult r = trainer.run();
  EXPECT_EQ(r.steps, 6u);
  EXPECT_EQ(r.skipped_steps, 2u);
  EXPECT_TRUE(torch::isfinite(method.weight()).all().item<bool>());
  EXPECT_LT(method.weight()[0].item<double>(), 1.0);  // the other steps did train
}

TEST(NanGuard, StopsAfterTooManyInARow) {
  testing::TempDir dir;
  PoisonedMethod method({2, 3, 4});
  algorithms::DatasetSource source(method.num_train(), 1, false);
  auto group = core::ProcessGroup::single();
  Trainer trainer(config_for(dir.path()), method, source, *group, {});
  try {
    trainer.run();
    FAIL() << "expected the run to stop";
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("3 consecutive steps with a non-finite loss"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace rudder::trainer
