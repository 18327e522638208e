#include "algorithms/pair_metrics.h"

#include "core/error.h"

namespace rudder::algorithms {

std::map<std::string, double> pairwise_metrics(const std::vector<double>& chosen,
                                               const std::vector<double>& rejected,
                                               const std::vector<std::string>& categories) {
  RUDDER_ASSERT(chosen.size() == rejected.size(), chosen.size(), " chosen rewards but ",
                rejected.size(), " rejected ones");
  std::map<std::string, double> out;
  if (chosen.empty()) return out;
  double correct = 0, margin = 0;
  std::map<std::string, std::pair<double, double>> by_category;  // correct, total
  for (size_t i = 0; i < chosen.size(); ++i) {
    const double hit = chosen[i] > rejected[i] ? 1.0 : 0.0;
    correct += hit;
    margin += chosen[i] - rejected[i];
    const std::string category = i < categories.size() ? categories[i] : std::string();
    if (category.empty()) continue;
    by_category[category].first += hit;
    by_category[category].second += 1.0;
  }
  const auto n = static_cast<double>(chosen.size());
  out["eval/accuracy"] = correct / n;
  out["eval/margin"] = margin / n;
  for (const auto& [category, counts] : by_category)
    out["eval/accuracy/" + category] = counts.first / counts.second;
  return out;
}

}  // namespace rudder::algorithms
