#include "rollout/win_rate.h"

#include "core/error.h"

namespace rudder::rollout {

double win_rate(const std::vector<double>& a, const std::vector<double>& b) {
  RUDDER_CHECK(!a.empty() && a.size() == b.size(),
               "win_rate needs two equal, non-empty score lists, got ", a.size(), " and ",
               b.size());
  double wins = 0;
  for (size_t i = 0; i < a.size(); ++i) wins += a[i] > b[i] ? 1.0 : a[i] == b[i] ? 0.5 : 0.0;
  return wins / static_cast<double>(a.size());
}

size_t best_of_n(const std::vector<double>& scores, bool worst) {
  RUDDER_CHECK(!scores.empty(), "best_of_n needs at least one score");
  size_t best = 0;
  for (size_t i = 1; i < scores.size(); ++i) {
    if (worst ? scores[i] < scores[best] : scores[i] > scores[best]) best = i;
  }
  return best;
}

}  // namespace rudder::rollout
