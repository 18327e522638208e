// The loop's contract with a method, checked where it is declared (algorithms/algorithm.h):
// misreported loss units and a wrong number of planned updates fail loudly, and parameter
// groups scale their learning rate.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/config.h"
#include "core/error.h"
#include "tests/support/test_support.h"
#include "trainer/trainer.h"

namespace rudder::trainer {
namespace {

// y = sum(a^2) + sum(b^2) over rows; knobs break the contract on purpose.
class TwoTensorMethod : public algorithms::DatasetAlgorithm {
 public:
  TwoTensorMethod() {
    module_.register_parameter("a", torch::ones({2, 2}));
    critic_ = module_.register_module("critic", std::make_shared<torch::nn::Module>());
    critic_->register_parameter("b", torch::ones({2, 2}));
  }
  double unit_error = 0;       // added to the units the method reports
  uint64_t extra_updates = 0;  // updates_per_batch() claims this many more than planned
  std::vector<algorithms::ParamGroup> groups;

  std::string name() const override { return "two_tensor"; }
  uint64_t num_train() const override { return 8; }
  uint64_t updates_per_batch() const override { return 1 + extra_updates; }
  double example_units(const std::vector<uint64_t>& examples) const override {
    return static_cast<double>(examples.size());
  }
  std::map<std::string, double> evaluate() override { return {}; }
  torch::nn::Module& trainable() override { return module_; }
  std::vector<algorithms::ParamGroup> param_groups() const override { return groups; }
  double flops_per_token() const override { return 1.0; }
  at::Tensor param(const std::string& name) { return module_.named_parameters()[name]; }

 protected:
  algorithms::StepStats train_examples(const std::vector<uint64_t>& examples,
                                       double total_units) override {
    auto p = module_.named_parameters();
    const double n = static_cast<double>(examples.size());
    at::Tensor loss = (p["a"].pow(2).sum() + p["critic.b"].pow(2).sum()) * n;
    (loss / total_units).backward();
    algorithms::StepStats s;
    s.loss_sum = loss.item<double>();
    s.units = n + unit_error;
    s.tokens = n;
    return s;
  }

 private:
  torch::nn::Module module_;
  std::shared_ptr<torch::nn::Module> critic_;
};

ExperimentConfig config_for(const std::string& out, uint64_t max_steps) {
  ExperimentConfig c;
  core::parse_config_text("output_dir: " + out +
                              "\ntraining: {max_steps: " + std::to_string(max_steps) +
                              ", micro_batch_size: 4, "
                              "global_batch_size: 4}\noptimizer: {lr: 0.1, weight_decay: 0}\n",
                          "loop contract test", {}, &c);
  return c;
}

std::string run_error(TwoTensorMethod& method) {
  testing::TempDir dir;
  algorithms::DatasetSource source(method.num_train(), 1, false);
  auto group = core::ProcessGroup::single();
  try {
    Trainer(config_for(dir.path(), method.updates_per_batch()), method, source, *group, {}).run();
  } catch (const core::Error& e) {
    return e.what();
  }
  return "";
}

TEST(LoopContract, MisreportedUnitsFailLoudly) {
  TwoTensorMethod method;
  method.unit_error = 1;
  const std::string error = run_error(method);
  EXPECT_NE(error.find("reported 5 loss units, units() declared 4"), std::string::npos) << error;
}

TEST(LoopContract, AWrongNumberOfUpdatesFailsLoudly) {
  TwoTensorMethod method;
  method.extra_updates = 1;
  const std::string error = run_error(method);
  EXPECT_NE(error.find("planned 1 updates for a batch, updates_per_batch() says 2"),
            std::string::npos)
      << error;
}

TEST(LoopContract, MaxStepsMustEndOnABatchBoundary) {
  TwoTensorMethod method;
  method.extra_updates = 1;  // two updates per batch
  testing::TempDir dir;
  algorithms::DatasetSource source(method.num_train(), 1, false);
  auto group = core::ProcessGroup::single();
  try {
    Trainer(config_for(dir.path(), 3), method, source, *group, {}).run();
    FAIL() << "expected max_steps 3 to be refused";
  } catch (const core::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("training.max_steps (3) must be a multiple of "
                                         "two_tensor's 2 updates per batch"),
              std::string::npos)
        << e.what();
  }
}

TEST(LoopContract, ParameterGroupsScaleTheLearningRate) {
  // Adam's first step moves every weight by lr (times its group's scale) when gradients are
  // large next to eps: a by 0.1, critic.b by 0.3.
  TwoTensorMethod method;
  method.groups = {{"critic.", 3.0}};
  EXPECT_EQ(run_error(method), "");
  EXPECT_NEAR(method.param("a")[0][0].item<double>(), 0.9, 1e-6);
  EXPECT_NEAR(method.param("critic.b")[0][0].item<double>(), 0.7, 1e-6);

  TwoTensorMethod unmatched;
  unmatched.groups = {{"value_head.", 2.0}};
  EXPECT_NE(run_error(unmatched).find("parameter group 'value_head.' matches no trainable"),
            std::string::npos);
}

}  // namespace
}  // namespace rudder::trainer
