#include "rewards/rule_rewards.h"

#include <set>

#include "core/error.h"
#include "rewards/detail/text_batch.h"

namespace rudder::rewards {
namespace {

std::string trim(const std::string& s) {
  const size_t begin = s.find_first_not_of(' ');
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(' ') - begin + 1);
}

}  // namespace

ExactMatchReward::ExactMatchReward(std::unordered_map<std::string, std::string> answers)
    : answers_(std::move(answers)) {}

std::vector<double> ExactMatchReward::score(const std::vector<std::string>& prompts,
                                            const std::vector<std::string>& responses) {
  detail::check_same_length(prompts, responses);
  std::vector<double> out;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto it = answers_.find(prompts[i]);
    RUDDER_CHECK(it != answers_.end(), "exact match knows no answer for prompt '",
                 prompts[i].substr(0, 80), "'");
    out.push_back(trim(responses[i]) == trim(it->second) ? 1.0 : 0.0);
  }
  return out;
}

RegexReward::RegexReward(const std::string& pattern) : pattern_(pattern) {
  try {
    regex_ = std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw core::InvalidArgument(
        core::str("regex reward: pattern '", pattern, "' does not compile: ", e.what()));
  }
}

std::vector<double> RegexReward::score(const std::vector<std::string>& prompts,
                                       const std::vector<std::string>& responses) {
  detail::check_same_length(prompts, responses);
  std::vector<double> out;
  for (const auto& r : responses) out.push_back(std::regex_search(r, regex_) ? 1.0 : 0.0);
  return out;
}

LengthPenaltyReward::LengthPenaltyReward(size_t max_chars, double per_char)
    : max_chars_(max_chars), per_char_(per_char) {
  RUDDER_CHECK(per_char_ >= 0, "length penalty: per_char must be >= 0, got ", per_char_);
}

std::vector<double> LengthPenaltyReward::score(const std::vector<std::string>& prompts,
                                               const std::vector<std::string>& responses) {
  detail::check_same_length(prompts, responses);
  std::vector<double> out;
  for (const auto& r : responses) {
    const size_t excess = r.size() > max_chars_ ? r.size() - max_chars_ : 0;
    out.push_back(-per_char_ * static_cast<double>(excess));
  }
  return out;
}

WeightedSumReward::WeightedSumReward(std::vector<RewardTerm> terms) : terms_(std::move(terms)) {
  RUDDER_CHECK(!terms_.empty(), "a weighted sum of rewards needs at least one source");
  std::set<std::string> names;
  for (const auto& t : terms_) {
    RUDDER_CHECK(t.model != nullptr, "reward source '", t.name, "' has no model");
    RUDDER_CHECK(names.insert(t.name).second, "two reward sources are named '", t.name, "'");
  }
}

std::vector<double> WeightedSumReward::score(const std::vector<std::string>& prompts,
                                             const std::vector<std::string>& responses) {
  std::vector<double> out;
  for (const auto& d : score_detailed(prompts, responses, {})) out.push_back(d.reward);
  return out;
}

std::vector<ScoreDetail> WeightedSumReward::score_detailed(
    const std::vector<std::string>& prompts, const std::vector<std::string>& responses,
    const ScoreOptions& options) {
  detail::check_same_length(prompts, responses);
  check_score_options(options, capabilities(), version());
  std::vector<ScoreDetail> out(prompts.size());
  for (const auto& t : terms_) {
    const auto r = t.model->score(prompts, responses);
    for (size_t i = 0; i < out.size(); ++i) {
      out[i].reward += t.weight * r[i];
      if (options.dimension_scores) out[i].dimension_scores[t.name] = r[i];
    }
  }
  return out;
}

ScoreCapabilities WeightedSumReward::capabilities() const {
  ScoreCapabilities c;
  for (const auto& t : terms_) c.dimensions.push_back(t.name);
  return c;
}

std::string WeightedSumReward::version() const {
  std::string v = "sum(";
  for (size_t i = 0; i < terms_.size(); ++i)
    v += (i ? "," : "") + terms_[i].name + ":" + terms_[i].model->version();
  return v + ")";
}

}  // namespace rudder::rewards
