// Held-out metrics shared by the reward-model trainers: pairwise accuracy (ties are not
// accurate), mean margin and accuracy per category, from the rewards of chosen and rejected.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace rudder::algorithms {

/// eval/accuracy, eval/margin and eval/accuracy/<category> (rows whose category is not "");
/// `categories` may be shorter than the pairs (missing ones count as "").
std::map<std::string, double> pairwise_metrics(const std::vector<double>& chosen,
                                               const std::vector<double>& rejected,
                                               const std::vector<std::string>& categories);

}  // namespace rudder::algorithms
