// The cases of losses.json under the golden dir, read when the test runs (not when it is built
// or discovered), so whatever RUDDER_GOLDEN_DIR holds at ctest time is what gets checked. Cases
// whose op is implemented must match within the file's tolerance; the others are listed as
// skipped, never counted as passed; a run in which no case ran fails.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "algorithms/dpo_loss.h"
#include "core/error.h"
#include "rewards/arm_loss.h"
#include "rewards/bt_loss.h"
#include "rewards/calibration.h"
#include "rewards/dmoerm_aggregate.h"
#include "rollout/guidance.h"
#include "rollout/win_rate.h"
#include "tests/support/tensor_testing.h"
#include "tests/support/test_support.h"

namespace rudder {
namespace {

using nlohmann::json;
using Outputs = std::map<std::string, json>;

// Inputs go to the test device (RUDDER_TEST_DEVICE), outputs come back to the CPU.
at::Tensor tensor_of(const json& j) {
  return torch::tensor(j.get<std::vector<double>>(), torch::kDouble).to(testing::test_device());
}

json json_of(const at::Tensor& t) {
  const at::Tensor c = t.to(torch::kCPU, torch::kDouble).contiguous();
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
          {"accuracy", out.accuracy()},
          {"margin", out.margin()}};
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

// The numbers of a number or a nested list, in order.
std::vector<double> as_list(const json& j) {
  std::vector<double> out;
  const std::function<void(const json&)> walk = [&](const json& x) {
    if (!x.is_array()) {
      out.push_back(x.get<double>());
      return;
    }
    for (const auto& e : x) walk(e);
  };
  walk(j);
  return out;
}

// A nested JSON list ([B], [B, K], [B, K, H], ...) or a number as a double tensor of that shape.
at::Tensor nested_tensor_of(const json& j) {
  std::vector<int64_t> shape;
  for (const json* p = &j; p->is_array(); p = &p->front()) {
    shape.push_back(static_cast<int64_t>(p->size()));
    if (p->empty()) break;
  }
  return torch::tensor(as_list(j), torch::kDouble).reshape(shape).to(testing::test_device());
}

Outputs run_arm(const json& params, const json& in) {
  rewards::ArmLossOptions o;
  o.beta_r = params.value("beta_r", o.beta_r);
  o.margin = params.value("margin", 0.0);
  o.label_smoothing = params.value("label_smoothing", 0.0);
  const auto out =
      rewards::arm_loss(tensor_of(in.at("chosen_logps")), tensor_of(in.at("rejected_logps")), o);
  return {{"loss", json_of(out.loss)},
          {"chosen_rewards", json_of(out.chosen_rewards)},
          {"rejected_rewards", json_of(out.rejected_rewards)}};
}

Outputs run_ctrl_calibrate(const json&, const json& in) {
  return {{"calibrated", json_of(rewards::ctrl_calibrate(tensor_of(in.at("reward")),
                                                         nested_tensor_of(in.at("ref_rewards"))))}};
}

Outputs run_dmoerm_aggregate(const json& params, const json& in) {
  rewards::DmoermAggregatorWeights w;
  w.w1 = nested_tensor_of(in.at("w1"));
  w.b1 = tensor_of(in.at("b1"));
  w.w2 = tensor_of(in.at("w2"));
  w.b2 = nested_tensor_of(in.at("b2"));
  w.prelu_weight = torch::scalar_tensor(params.value("prelu_weight", 0.25), torch::kDouble);
  return {{"reward", json_of(rewards::dmoerm_aggregate(nested_tensor_of(in.at("hidden")), w))}};
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

Outputs run_genarm_combine(const json& params, const json& in) {
  rollout::GenarmCombineOptions o;
  o.weights = params.value("weights", std::vector<double>{});
  o.temperature = params.value("temperature", 1.0);
  return {{"logprobs", json_of(rollout::genarm_combine(tensor_of(in.at("base_logits")),
                                                       nested_tensor_of(in.at("arm_logits")), o))}};
}

Outputs run_gedi_posterior(const json& params, const json& in) {
  rollout::GediPosteriorOptions o;
  o.logit_scale = params.value("logit_scale", 1.0);
  o.bias_desired = o.bias_anti = params.value("bias", 0.0);  // one bias on both class logits
  o.class_bias = params.value("class_bias", 0.0);
  return {{"class_prob",
           json_of(rollout::gedi_posterior(
               tensor_of(in.at("logp_desired")), tensor_of(in.at("logp_anti")),
               nested_tensor_of(in.at("history_desired")), nested_tensor_of(in.at("history_anti")),
               nested_tensor_of(in.at("num_tokens")), o))}};
}

Outputs run_gedi_combine(const json& params, const json& in) {
  rollout::GediCombineOptions o;
  o.omega = params.value("omega", o.omega);
  o.filter_p = params.value("filter_p", o.filter_p);
  o.target_p = params.value("target_p", o.target_p);
  const auto out =
      rollout::gedi_combine(tensor_of(in.at("lm_logp")), tensor_of(in.at("class_prob")), o);
  return {{"weighted_probs", json_of(out.weighted_probs)},
          {"probs", json_of(out.probs)},
          {"removed", json_of(out.removed)}};
}

const std::map<std::string, std::function<Outputs(const json&, const json&)>>& ops() {
  static const std::map<std::string, std::function<Outputs(const json&, const json&)>> table = {
      {"dpo_loss", run_dpo},
      {"bt_loss", run_bt},
      {"ranked_bt_loss", run_ranked_bt},
      {"arm_loss", run_arm},
      {"ctrl_calibrate", run_ctrl_calibrate},
      {"dmoerm_aggregate", run_dmoerm_aggregate},
      {"win_rate", run_win_rate},
      {"best_of_n", run_best_of_n},
      {"genarm_combine", run_genarm_combine},
      {"gedi_posterior", run_gedi_posterior},
      {"gedi_combine", run_gedi_combine}};
  return table;
}

// All 17 significant digits, so a near miss shows where it differs.
std::string full(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", x);
  return buf;
}

// Whether `got` matches `want` within atol + rtol * |want|; equal infinities match, and NaN
// matches NaN.
bool matches(double got, double want, double atol, double rtol) {
  if (std::isnan(want) || std::isnan(got)) return std::isnan(want) && std::isnan(got);
  if (std::isinf(want) || std::isinf(got)) return got == want;  // rtol * inf would take anything
  return std::abs(got - want) <= atol + rtol * std::abs(want);
}

// What differs between the expected outputs (numbers or lists) and `got`; empty when everything
// matches. An output the size of the inputs' `mask` is compared only where the mask is 1.
std::vector<std::string> mismatches(const json& expected, const Outputs& got, const json& inputs,
                                    double atol, double rtol) {
  std::vector<std::string> out;
  if (expected.empty()) out.push_back("the case expects no output");
  const std::vector<double> mask =
      inputs.contains("mask") ? as_list(inputs.at("mask")) : std::vector<double>{};
  for (const auto& [key, want] : expected.items()) {
    if (!got.count(key)) {
      out.push_back("no output '" + key + "'");
      continue;
    }
    const auto w = as_list(want), h = as_list(got.at(key));
    if (w.size() != h.size()) {
      out.push_back(core::str(key, ": ", h.size(), " values, expected ", w.size()));
      continue;
    }
    const bool masked = mask.size() == w.size();
    for (size_t i = 0; i < w.size(); ++i) {
      if (masked && mask[i] == 0) continue;
      if (!matches(h[i], w[i], atol, rtol))
        out.push_back(core::str(key, "[", i, "] = ", full(h[i]), ", expected ", full(w[i])));
    }
  }
  return out;
}

// One case: "" when it matches, else what went wrong (mismatches or the exception it threw).
std::string run_case(const json& c, double atol, double rtol) {
  try {
    const auto& run = ops().at(c.at("op").get<std::string>());
    const auto problems =
        mismatches(c.at("expected"), run(c.value("params", json::object()), c.at("inputs")),
                   c.at("inputs"), atol, rtol);
    std::string text;
    for (const auto& p : problems) text += "\n  " + p;
    return text;
  } catch (const std::exception& e) {
    return std::string("\n  threw: ") + e.what();
  }
}

// Starts the strings quote_nonfinite makes of bare non-finite numbers: U+0001, which no name or
// parameter of the file starts with.
constexpr char kNonfinite = '\x01';

// `text` with the bare NaN, Infinity and -Infinity that Python's json module writes (outside
// strings) quoted, marked with kNonfinite, so that a strict JSON parser reads them.
std::string quote_nonfinite(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) {
        out += text[++i];
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') in_string = true;
    bool quoted = false;
    for (const std::string_view token : {"-Infinity", "Infinity", "NaN"}) {
      if (text.compare(i, token.size(), token) == 0) {
        out += "\"\\u0001";
        out += token;
        out += '"';
        i += token.size() - 1;
        quoted = true;
        break;
      }
    }
    if (!quoted) out += c;
  }
  return out;
}

// The quoted non-finite numbers of quote_nonfinite's output back as numbers.
void restore_nonfinite(json& j) {
  if (j.is_string()) {
    const std::string& v = j.get_ref<const std::string&>();
    if (v.empty() || v.front() != kNonfinite) return;
    if (v == std::string(1, kNonfinite) + "NaN") j = std::nan("");
    if (v == std::string(1, kNonfinite) + "Infinity") j = HUGE_VAL;
    if (v == std::string(1, kNonfinite) + "-Infinity") j = -HUGE_VAL;
    return;
  }
  if (j.is_structured()) {
    for (auto& e : j) restore_nonfinite(e);
  }
}

TEST(GoldenLosses, EveryCaseOfTheGoldenFile) {
  const std::string path = testing::golden_dir() + "/losses.json";
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << "cannot read " << path << " (set RUDDER_GOLDEN_DIR)";
  json file = json::parse(quote_nonfinite(std::string(std::istreambuf_iterator<char>(in), {})));
  restore_nonfinite(file);
  const double atol = file.at("tolerance").at("atol"), rtol = file.at("tolerance").at("rtol");
  int passed = 0, failed = 0;
  std::set<std::string> names;
  std::map<std::string, std::vector<std::string>> skipped;  // op -> case names
  for (const auto& c : file.at("cases")) {
    const std::string name = c.at("name"), op = c.at("op");
    EXPECT_TRUE(names.insert(name).second) << "case name '" << name << "' appears twice";
    if (!ops().count(op)) {
      skipped[op].push_back(name);
      continue;
    }
    const std::string problems = run_case(c, atol, rtol);
    std::cout << "[ golden ] " << name << " (" << op
              << "): " << (problems.empty() ? "ok" : "FAILED") << "\n";
    if (problems.empty()) {
      ++passed;
    } else {
      ++failed;
      ADD_FAILURE() << "golden case '" << name << "' (" << op << ") of " << path << problems;
    }
  }
  size_t skipped_count = 0;
  for (const auto& [op, cases] : skipped) {
    skipped_count += cases.size();
    std::cout << "[ golden ] skipped, op '" << op << "' not implemented:";
    for (const auto& n : cases) std::cout << " " << n;
    std::cout << "\n";
  }
  std::cout << "[ golden ] " << path << ": " << passed << " passed, " << failed << " failed, "
            << skipped_count << " skipped (op not implemented)\n";
  EXPECT_GT(passed + failed, 0) << "no case of " << path << " ran (" << skipped_count
                                << " cases, none with an implemented op): running no case is a "
                                   "failure";
}

}  // namespace
}  // namespace rudder
