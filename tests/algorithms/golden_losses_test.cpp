// Every case of losses.json under the golden dir becomes its own test, named after the case:
// cases whose op is implemented are matched within the file's tolerance; the others are
// reported as skipped, never as passed.
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "algorithms/dpo_loss.h"
#include "rewards/bt_loss.h"
#include "rollout/win_rate.h"
#include "tests/support/test_support.h"

namespace rudder {
namespace {

using nlohmann::json;
using Outputs = std::map<std::string, json>;

at::Tensor tensor_of(const json& j) {
  return torch::tensor(j.get<std::vector<double>>(), torch::kDouble);
}

json json_of(const at::Tensor& t) {
  const at::Tensor c = t.to(torch::kDouble).contiguous();
  if (c.dim() == 0) return c.item<double>();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

Outputs run_dpo(const json& params, const json& in) {
  algorithms::DpoLossOptions o;
  o.loss_type = params.value("loss_type", "sigmoid");
  o.beta = params.value("beta", 0.1);
  o.label_smoothing = params.value("label_smoothing", 0.0);
  o.reference_free = params.value("reference_free", false);
  at::Tensor lc, lr;
  if (in.contains("chosen_lengths")) {
    lc = tensor_of(in.at("chosen_lengths"));
    lr = tensor_of(in.at("rejected_lengths"));
  }
  const auto out = algorithms::dpo_loss(
      tensor_of(in.at("policy_chosen_logps")), tensor_of(in.at("policy_rejected_logps")),
      tensor_of(in.at("ref_chosen_logps")), tensor_of(in.at("ref_rejected_logps")), o, lc, lr);
  return {{"loss", json_of(out.loss)},
          {"losses", json_of(out.losses)},
          {"chosen_rewards", json_of(out.chosen_rewards)},
          {"rejected_rewards", json_of(out.rejected_rewards)},
          {"accuracy", out.accuracy},
          {"margin", out.margin}};
}

Outputs run_bt(const json& params, const json& in) {
  const at::Tensor margin = in.contains("margin") ? tensor_of(in.at("margin")) : at::Tensor();
  const auto out = rewards::bt_loss(tensor_of(in.at("chosen")), tensor_of(in.at("rejected")),
                                    margin, params.value("center_coef", 0.0));
  return {{"loss", json_of(out.loss)}, {"accuracy", out.accuracy}, {"margin", out.margin}};
}

Outputs run_ranked_bt(const json&, const json& in) {
  return {{"loss", json_of(rewards::ranked_bt_loss(tensor_of(in.at("rewards")),
                                                   tensor_of(in.at("ranks"))))}};
}

Outputs run_win_rate(const json&, const json& in) {
  return {{"win_rate", rollout::win_rate(in.at("a").get<std::vector<double>>(),
                                         in.at("b").get<std::vector<double>>())}};
}

Outputs run_best_of_n(const json& params, const json& in) {
  return {
      {"index", static_cast<double>(rollout::best_of_n(in.at("scores").get<std::vector<double>>(),
                                                       params.value("worst", false)))}};
}

const std::map<std::string, std::function<Outputs(const json&, const json&)>>& ops() {
  static const std::map<std::string, std::function<Outputs(const json&, const json&)>> table = {
      {"dpo_loss", run_dpo},
      {"bt_loss", run_bt},
      {"ranked_bt_loss", run_ranked_bt},
      {"win_rate", run_win_rate},
      {"best_of_n", run_best_of_n}};
  return table;
}

// Compares every expected key (numbers or flat lists) within atol + rtol * |expected|.
void expect_matches(const json& expected, const Outputs& got, double atol, double rtol) {
  for (const auto& [key, want] : expected.items()) {
    ASSERT_TRUE(got.count(key)) << "no output '" << key << "'";
    const json& have = got.at(key);
    const auto as_list = [](const json& j) {
      return j.is_array() ? j.get<std::vector<double>>() : std::vector<double>{j.get<double>()};
    };
    const auto w = as_list(want), h = as_list(have);
    ASSERT_EQ(w.size(), h.size()) << key;
    for (size_t i = 0; i < w.size(); ++i) {
      EXPECT_NEAR(h[i], w[i], atol + rtol * std::abs(w[i])) << key << "[" << i << "]";
    }
  }
}

class GoldenCase : public ::testing::Test {
 public:
  GoldenCase(json c, double atol, double rtol) : case_(std::move(c)), atol_(atol), rtol_(rtol) {}
  void TestBody() override {
    const std::string op = case_.at("op");
    const auto it = ops().find(op);
    if (it == ops().end()) GTEST_SKIP() << "op '" << op << "' is not implemented yet";
    expect_matches(case_.at("expected"),
                   it->second(case_.value("params", json::object()), case_.at("inputs")), atol_,
                   rtol_);
  }

 private:
  json case_;
  double atol_, rtol_;
};

void register_cases() {
  const std::string path = testing::golden_dir() + "/losses.json";
  std::ifstream in(path);
  if (!in) {
    ::testing::RegisterTest("golden_losses", "file_present", nullptr, nullptr, __FILE__, __LINE__,
                            [path]() -> ::testing::Test* {
                              struct Missing : ::testing::Test {
                                std::string p;
                                explicit Missing(std::string x) : p(std::move(x)) {}
                                void TestBody() override { FAIL() << "cannot read " << p; }
                              };
                              return new Missing(path);
                            });
    return;
  }
  const json file = json::parse(in);
  const double atol = file.at("tolerance").at("atol"), rtol = file.at("tolerance").at("rtol");
  for (const auto& c : file.at("cases")) {
    ::testing::RegisterTest(
        "golden_losses", c.at("name").get<std::string>().c_str(), nullptr, nullptr, __FILE__,
        __LINE__, [c, atol, rtol]() -> ::testing::Test* { return new GoldenCase(c, atol, rtol); });
  }
}

}  // namespace
}  // namespace rudder

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  rudder::register_cases();
  return RUN_ALL_TESTS();
}
